//! Binding `usher serve`'s address, first of all: a failed start must leave no data
//! dir, database or token behind, and say what to do.

use std::io::ErrorKind;
use std::net::TcpListener;

/// Binds `addr`, or says why not in words an operator can act on.
pub fn listen(addr: &str) -> Result<Vec<TcpListener>, String> {
    crate::http::server::listen(addr).map_err(|e| {
        let why = match e.kind() {
            ErrorKind::AddrInUse => format!(
                "the address is already in use (another Usher, or another program, listens there); \
                 stop it, or choose another address with --addr, e.g. --addr {}",
                next_port(addr)
            ),
            ErrorKind::PermissionDenied => "the port needs privileges this process lacks \
                 (ports below 1024 do); choose another with --addr, e.g. --addr 127.0.0.1:8080"
                .to_string(),
            ErrorKind::AddrNotAvailable => format!(
                "not an address of this machine ({e}); --addr takes HOST:PORT, \
                 e.g. --addr 127.0.0.1:8080 or --addr 0.0.0.0:8080"
            ),
            _ => format!("{e}; --addr takes HOST:PORT, e.g. --addr 127.0.0.1:8080"),
        };
        format!("cannot listen on {addr}: {why}")
    })
}

/// `addr` with the port after its own, as a suggestion.
fn next_port(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) if port < u16::MAX => format!("{host}:{}", port + 1),
            _ => format!("{host}:0"),
        },
        None => "127.0.0.1:8081".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{listen, next_port};

    #[test]
    fn a_busy_address_is_named_with_a_way_out() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = listen(&addr).unwrap_err();
        assert!(err.contains(&addr), "{err}");
        assert!(err.contains("already in use"), "{err}");
        assert!(err.contains("--addr"), "{err}");
    }

    #[test]
    fn an_address_that_is_not_host_and_port_says_what_is_expected() {
        let err = listen("localhost").unwrap_err();
        assert!(err.contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn the_suggested_port_is_the_next_one() {
        assert_eq!(next_port("127.0.0.1:8080"), "127.0.0.1:8081");
        assert_eq!(next_port("[::1]:65535"), "[::1]:0");
    }
}
