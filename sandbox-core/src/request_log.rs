//! Both servers' request ids and their one log line per request, so that a request is
//! followed the same way through either journal (`journalctl -u sandbox-api | grep
//! req_…`). The HTTP wiring (putting the id in the response header) is each server's.

use std::time::Instant;

use rand::Rng;

/// Response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request being answered.
#[derive(Debug)]
pub struct RequestLog {
    id: String,
    method: String,
    path: String,
    started: Instant,
}

impl RequestLog {
    /// A new id (`{prefix}_` and 16 hex digits: `req` for the API, `ui` for the chat)
    /// for the request `method path`, its clock started.
    pub fn start(prefix: &str, method: &str, path: &str) -> Self {
        Self {
            id: format!("{prefix}_{:016x}", rand::rng().random::<u64>()),
            method: method.to_owned(),
            path: path.to_owned(),
            started: Instant::now(),
        }
    }

    /// The request's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request's one line: id, method, path (never the query or the body), status
    /// and milliseconds.
    pub fn finish(self, status: u16) {
        tracing::info!(
            request_id = %self.id,
            method = %self.method,
            path = %self.path,
            status,
            ms = self.started.elapsed().as_millis() as u64,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_prefix_and_differ() {
        let a = RequestLog::start("req", "GET", "/health");
        let b = RequestLog::start("req", "GET", "/health");
        assert!(
            a.id().starts_with("req_") && a.id().len() == 20,
            "{}",
            a.id()
        );
        assert_ne!(a.id(), b.id());
    }
}
