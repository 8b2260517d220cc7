//! Generated protobuf types of Flower 1.18.0's Fleet API (package `flwr.proto`):
//! [`CreateNodeRequest`], [`PingRequest`], [`PullMessagesRequest`], [`PushMessagesRequest`],
//! [`Message`], [`RecordDict`], [`ArrayRecord`], ...
//!
//! They come from the vendored `proto/flower/flwr/proto/*.proto` (proto3, Apache-2.0, Flower Labs),
//! compiled at build time by prost with protox (no `protoc`).

#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/flwr.proto.rs"));
