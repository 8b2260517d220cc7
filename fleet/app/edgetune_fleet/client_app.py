"""A placeholder ClientApp: Flower apps must name one, but an edgetune fleet's devices are edgetune
binaries speaking the Fleet API (`edgetune fleet join`), never this."""

from flwr.client import ClientApp

app = ClientApp()
