//! A TCP server without TLS that answers every connection with fixed bytes: an `http://`
//! port where the agent expects HTTPS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub struct PlainServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl PlainServer {
    /// Listens on 127.0.0.1; reads what the client sends first, answers `answer`, closes.
    pub fn start(answer: &'static [u8]) -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stop = stop.clone();
            thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut tcp) = tcp else { continue };
                    thread::spawn(move || {
                        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                        let mut first = [0u8; 4096];
                        let _ = tcp.read(&mut first);
                        let _ = tcp.write_all(answer);
                    });
                }
            })
        };
        PlainServer {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
