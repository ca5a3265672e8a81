//! Real sockets for transport tests: a minimal HTTPS server with certificates from a test CA,
//! a plain TCP server, and HTTP CONNECT proxies (tinyproxy when on PATH, and one in-process).
#![allow(dead_code)]

pub mod https;
pub mod plain;
pub mod proxy;

use std::net::{Ipv6Addr, SocketAddr, TcpListener};

/// A port nothing listens on (bound, read, released).
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Whether IPv6 loopback can be bound here; prints the SKIP notice when not.
pub fn ipv6_loopback_or_skip(test: &str) -> bool {
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))) {
        Ok(_) => true,
        Err(e) => {
            println!("SKIP {test}: IPv6 loopback [::1] not available ({e})");
            false
        }
    }
}
