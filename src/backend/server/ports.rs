//! Ports for the workers' servers on 127.0.0.1: from `basePort` up, or ports
//! the OS picks. A port is leased while its server lives and returns to the
//! pool when the lease drops, so replacements reuse ports instead of walking
//! up to 65535.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Ports {
    base: Option<u16>,
    leased: Mutex<HashSet<u16>>,
}

/// A port reserved for one server; released when dropped.
pub struct Lease {
    pub port: u16,
    ports: Arc<Ports>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.ports.leased().remove(&self.port);
    }
}

impl Ports {
    pub fn new(base: Option<u16>) -> Arc<Self> {
        Arc::new(Ports {
            base,
            leased: Mutex::new(HashSet::new()),
        })
    }

    fn leased(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        self.leased.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A port that no other server of this engine holds and that is free
    /// right now (another process may still take it before the server binds
    /// it; the server backend checks who listens). `skip` lists ports that
    /// just failed.
    pub fn lease(self: &Arc<Self>, skip: &[u16]) -> Option<Lease> {
        let mut leased = self.leased();
        let free = |port: u16| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .ok()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port())
        };
        let port = match self.base {
            Some(base) => (base..=u16::MAX)
                .filter(|p| !leased.contains(p) && !skip.contains(p))
                .find_map(free)?,
            None => (0..16)
                .filter_map(|_| free(0))
                .find(|p| !leased.contains(p) && !skip.contains(p))?,
        };
        leased.insert(port);
        Some(Lease {
            port,
            ports: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_differ_skip_ports_in_use_and_are_reused_once_released() {
        let base = 40100;
        let ports = Ports::new(Some(base));
        let a = ports.lease(&[]).unwrap();
        let b = ports.lease(&[]).unwrap();
        assert_ne!(a.port, b.port);
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, b.port + 1));
        let c = ports.lease(&[]).unwrap();
        if taken.is_ok() {
            assert!(c.port > b.port + 1, "a port in use is skipped");
        }
        let first = a.port;
        drop(a);
        assert_eq!(
            ports.lease(&[]).unwrap().port,
            first,
            "a released port is used again"
        );
    }

    #[test]
    fn a_base_near_the_top_does_not_run_out_when_servers_come_and_go() {
        let ports = Ports::new(Some(65530));
        for _ in 0..100 {
            let lease = ports.lease(&[]).expect("ports are reused");
            assert!(lease.port >= 65530);
        }
    }
}
