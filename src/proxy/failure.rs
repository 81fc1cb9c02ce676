//! One place that decides what a failed request looks like to the client and in the logs:
//! the status, the short body, and the reason label.

use bytes::Bytes;
use pingora::{Error, ErrorSource, ErrorType};

/// What went wrong, as the client and the operator need to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// An explicit status chosen by a hook (e.g. a future breaker's 503).
    Status(u16),
    /// The upstream could not be connected to (refused, unreachable, TLS handshake).
    ConnectFailed,
    /// The upstream did not answer in time (connect or read timeout).
    Timeout,
    /// The upstream answered with something that is not valid HTTP, or reset mid-way.
    BadResponse,
    /// The client sent something we could not parse.
    BadRequest,
    /// The client's request broke a `[limits]` bound while it streamed (e.g. 413).
    Refused(u16),
    /// The client paused longer than `[limits] body_timeout` while sending its body.
    ClientTimeout,
    /// The client went away; there is nobody to answer.
    ClientGone,
    Internal,
}

impl Failure {
    pub(crate) fn classify(e: &Error) -> Failure {
        use ErrorType::*;
        match (e.etype(), e.esource()) {
            (HTTPStatus(code), ErrorSource::Downstream) => Failure::Refused(*code),
            (HTTPStatus(code), _) => Failure::Status(*code),
            (
                ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout,
                ErrorSource::Upstream,
            ) => Failure::Timeout,
            (
                ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
                | TLSWantX509Lookup | InvalidCert | HandshakeError | BindError | SocketError
                | ConnectProxyFailure,
                ErrorSource::Upstream,
            ) => Failure::ConnectFailed,
            (_, ErrorSource::Upstream) => Failure::BadResponse,
            (ReadError | WriteError | ConnectionClosed, ErrorSource::Downstream) => {
                Failure::ClientGone
            }
            (ReadTimedout, ErrorSource::Downstream) => Failure::ClientTimeout,
            (_, ErrorSource::Downstream) => Failure::BadRequest,
            _ => Failure::Internal,
        }
    }

    /// The status for the client; 0 when there is no one to answer.
    pub(crate) fn status(self) -> u16 {
        match self {
            Failure::Status(code) | Failure::Refused(code) => code,
            Failure::ClientTimeout => 408,
            Failure::ConnectFailed | Failure::BadResponse => 502,
            Failure::Timeout => 504,
            Failure::BadRequest => 400,
            Failure::ClientGone => 0,
            Failure::Internal => 500,
        }
    }

    /// The client caused it: nothing to say about the upstream's health, and nothing an
    /// operator needs a warning for.
    pub(crate) fn is_client_side(self) -> bool {
        matches!(
            self,
            Failure::BadRequest
                | Failure::Refused(_)
                | Failure::ClientTimeout
                | Failure::ClientGone
        )
    }

    /// A stable, low-cardinality label for logs (and, later, metrics).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Refused(_) => "refused",
            Failure::ClientTimeout => "client_timeout",
            Failure::ConnectFailed => "connect_error",
            Failure::Timeout => "timeout",
            Failure::BadResponse => "bad_response",
            Failure::BadRequest => "bad_request",
            Failure::ClientGone => "client_gone",
            Failure::Internal => "internal",
        }
    }

    /// A short body that says what failed without leaking internal addresses.
    pub(crate) fn body(self, upstream: Option<&str>) -> Bytes {
        let up = upstream.unwrap_or("-");
        Bytes::from(match self {
            Failure::ConnectFailed => {
                format!("502 Bad Gateway: upstream \"{up}\" is unreachable\n")
            }
            Failure::Timeout => {
                format!("504 Gateway Timeout: upstream \"{up}\" did not answer in time\n")
            }
            Failure::BadResponse => {
                format!("502 Bad Gateway: upstream \"{up}\" sent an invalid response\n")
            }
            Failure::BadRequest => "400 Bad Request\n".to_string(),
            Failure::ClientTimeout => {
                "408 Request Timeout: the request body stalled (limits.body_timeout)\n".to_string()
            }
            Failure::Status(code) | Failure::Refused(code) => format!(
                "{code} {}\n",
                http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
            ),
            Failure::ClientGone => String::new(),
            Failure::Internal => "500 Internal Server Error\n".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_map_to_gateway_statuses() {
        let refused = Error::new_up(ErrorType::ConnectRefused);
        assert_eq!(Failure::classify(&refused).status(), 502);
        let timeout = Error::new_up(ErrorType::ReadTimedout);
        assert_eq!(Failure::classify(&timeout).status(), 504);
        let connect_timeout = Error::new_up(ErrorType::ConnectTimedout);
        assert_eq!(Failure::classify(&connect_timeout).status(), 504);
        let gone = Error::new_down(ErrorType::ConnectionClosed);
        assert_eq!(Failure::classify(&gone).status(), 0);
        let status = Error::new(ErrorType::HTTPStatus(503));
        assert_eq!(Failure::classify(&status).status(), 503);
    }

    #[test]
    fn client_side_errors_are_told_apart_from_upstream_ones() {
        let too_large = Error::new_down(ErrorType::HTTPStatus(413));
        assert_eq!(Failure::classify(&too_large), Failure::Refused(413));
        assert!(Failure::classify(&too_large).is_client_side());
        let stalled = Error::new_down(ErrorType::ReadTimedout);
        assert_eq!(Failure::classify(&stalled).status(), 408);
        assert!(Failure::classify(&stalled).is_client_side());
        let upstream_timeout = Error::new_up(ErrorType::ReadTimedout);
        assert!(!Failure::classify(&upstream_timeout).is_client_side());
    }
}
