"""The coordinator of an edgetune fleet: a Flower 1.18 ServerApp over edgetune's head tensors."""
