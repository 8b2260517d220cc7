//! The Fleet API of Flower 1.18.0 over its REST transport: protobuf bodies `POST`ed to
//! `/api/v0/fleet/<rpc>` (`flwr/server/superlink/fleet/rest_rere/rest_api.py`).
//!
//! | call | request | answer |
//! | --- | --- | --- |
//! | `create-node` | `CreateNodeRequest { ping_interval }` | `CreateNodeResponse { node }` |
//! | `ping` | `PingRequest { node, ping_interval }` | `PingResponse { success }` |
//! | `pull-messages` | `PullMessagesRequest { node }` | `PullMessagesResponse { messages_list }` (at most one) |
//! | `push-messages` | `PushMessagesRequest { node, messages_list: [reply] }` | `PushMessagesResponse { results }` |
//! | `delete-node` | `DeleteNodeRequest { node }` | `DeleteNodeResponse {}` |

use super::error::FleetError;
use super::http::{HttpClient, HttpError, Traffic};
use super::proto;

/// The node id Flower gives the SuperLink itself (source of every instruction).
pub const SUPERLINK_NODE_ID: u64 = 1;

/// One call's name (the path's last part) and the size of its request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `create-node`, `ping`, `pull-messages`, `push-messages`, `delete-node`.
    pub call: &'static str,
    /// Bytes of the protobuf body.
    pub body_bytes: usize,
}

/// A node's end of the Fleet API.
pub struct FleetLink {
    http: HttpClient,
    /// Every call made, in order (what the device sent, by type and size).
    pub log: Vec<Sent>,
}

impl FleetLink {
    /// A link over `http`.
    pub fn new(http: HttpClient) -> Self {
        Self {
            http,
            log: Vec::new(),
        }
    }

    /// Bytes sent and received so far.
    pub fn traffic(&self) -> Traffic {
        self.http.traffic
    }

    fn call<Req: prost::Message, Res: prost::Message + Default>(
        &mut self,
        call: &'static str,
        req: &Req,
    ) -> Result<Res, FleetError> {
        let body = req.encode_to_vec();
        self.log.push(Sent {
            call,
            body_bytes: body.len(),
        });
        let address = self.http.address().to_string();
        let answer = self
            .http
            .post(&format!("/api/v0/fleet/{call}"), &body)
            .map_err(|e| match e {
                HttpError::Unreachable(m) => FleetError::Link {
                    address: address.clone(),
                    message: format!("{call}: {m}"),
                },
                other => FleetError::Protocol {
                    address: address.clone(),
                    message: format!("{call}: {other}"),
                },
            })?;
        Res::decode(answer.as_slice()).map_err(|e| FleetError::Protocol {
            address,
            message: format!("{call}: the answer is not a Flower 1.18 message: {e}"),
        })
    }

    /// Registers this device; its node id.
    pub fn create_node(&mut self, ping_interval: f64) -> Result<u64, FleetError> {
        let res: proto::CreateNodeResponse =
            self.call("create-node", &proto::CreateNodeRequest { ping_interval })?;
        match res.node {
            Some(n) if n.node_id != 0 => Ok(n.node_id),
            _ => Err(FleetError::Protocol {
                address: self.http.address().into(),
                message: "create-node: no node id in the answer".into(),
            }),
        }
    }

    /// Tells the SuperLink the node is alive for `ping_interval` more seconds; `false` when the
    /// SuperLink does not know the node (it restarted without its state, or dropped the node).
    pub fn ping(&mut self, node_id: u64, ping_interval: f64) -> Result<bool, FleetError> {
        let res: proto::PingResponse = self.call(
            "ping",
            &proto::PingRequest {
                node: Some(proto::Node { node_id }),
                ping_interval,
            },
        )?;
        Ok(res.success)
    }

    /// The next instruction for the node, if any.
    pub fn pull(&mut self, node_id: u64) -> Result<Option<proto::Message>, FleetError> {
        let res: proto::PullMessagesResponse = self.call(
            "pull-messages",
            &proto::PullMessagesRequest {
                node: Some(proto::Node { node_id }),
                message_ids: Vec::new(),
            },
        )?;
        Ok(res.messages_list.into_iter().next())
    }

    /// Sends a reply; an error when the SuperLink did not store it (it names the reason it logs:
    /// an expired instruction, a finished run).
    pub fn push(&mut self, node_id: u64, reply: proto::Message) -> Result<(), FleetError> {
        let res: proto::PushMessagesResponse = self.call(
            "push-messages",
            &proto::PushMessagesRequest {
                node: Some(proto::Node { node_id }),
                messages_list: vec![reply],
            },
        )?;
        // Flower 1.18 answers {"<new message id>": 0} when stored, {"None": 0} when refused.
        if res.results.keys().any(|k| k == "None") || res.results.is_empty() {
            return Err(FleetError::Protocol {
                address: self.http.address().into(),
                message: "push-messages: the SuperLink did not store the reply (the instruction \
                          expired or the run ended; see its log)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Unregisters the node.
    pub fn delete_node(&mut self, node_id: u64) -> Result<(), FleetError> {
        let _: proto::DeleteNodeResponse = self.call(
            "delete-node",
            &proto::DeleteNodeRequest {
                node: Some(proto::Node { node_id }),
            },
        )?;
        Ok(())
    }
}
