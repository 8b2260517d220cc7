//! The shared-secret gate of TCP connections (`--token-file`): the first line must be
//! `{"token": "SECRET"}`; anything else is answered `"code": "unauthorized"` and the connection is
//! closed. Unix-socket connections (owner-only, or the `--socket-group`) pass without it.

use std::cell::Cell;

use serde_json::{json, Value};

use super::super::protocol::{self, ErrorCode, RequestError};
use super::super::transport::listen::Conn;
use super::super::transport::stream::Handler;
use super::state::Service;

/// A connection's handler: the service, behind the token check when one is required.
pub(super) struct Gate<'a> {
    svc: &'a Service,
    /// The connection, to close its reading side when the token is wrong.
    conn: Conn,
    /// The secret still to be shown (`None`: passed, or not required).
    token: Option<&'a str>,
    passed: Cell<bool>,
}

impl<'a> Gate<'a> {
    pub(super) fn new(svc: &'a Service, conn: &Conn) -> std::io::Result<Self> {
        let token = match conn {
            Conn::Tcp(_) => svc.inner.token.as_deref(),
            Conn::Unix(_) => None,
        };
        Ok(Self {
            svc,
            conn: conn.try_clone()?,
            passed: Cell::new(token.is_none()),
            token,
        })
    }

    fn refuse(&self, number: usize) -> Value {
        self.conn.shutdown_read();
        let e = RequestError::new(
            ErrorCode::Unauthorized,
            "this port needs the shared secret first: send {\"token\": \"...\"} (serve --token-file)",
        );
        self.svc.inner.stats.error(e.code);
        protocol::error_reply(&e, number, None)
    }
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Handler for Gate<'_> {
    fn handle(&self, line: &str, number: usize) -> Value {
        if self.passed.get() {
            return self.svc.handle_line(line, number);
        }
        let given = serde_json::from_str::<Value>(line).ok().and_then(|v| {
            let obj = v.as_object()?;
            (obj.len() == 1).then(|| obj.get("token")?.as_str().map(str::to_string))?
        });
        match (given, self.token) {
            (Some(t), Some(secret)) if same_secret(&t, secret) => {
                self.passed.set(true);
                json!({ "ok": true })
            }
            _ => self.refuse(number),
        }
    }

    fn reject(&self, error: RequestError, number: usize) -> Value {
        if !self.passed.get() {
            return self.refuse(number);
        }
        self.svc.reject(error, number)
    }

    fn begin(&self) {
        self.svc.begin()
    }

    fn end(&self) {
        self.svc.end()
    }

    fn stopping(&self) -> bool {
        self.svc.stopping()
    }
}
