//! Who listens on a TCP port. whisper-server loads its model before it binds
//! its port, and its port is on its command line: in that window another
//! local user can bind the port and pose as the server. The engine sends
//! nothing to a port until the socket listening there is its child's own.
//!
//! - Linux: the listening sockets' inodes (/proc/net/tcp, tcp6) among the
//!   child's file descriptors (/proc/<pid>/fd).
//! - macOS: `lsof` lists the pids that listen on the port.
//! - Windows: GetExtendedTcpTable gives each listener's owning pid.

/// The listeners on a port, as far as this system can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Nobody listens yet.
    Nobody,
    /// Only the given process listens.
    Mine,
    /// Another process listens (maybe besides the given one).
    Other,
}

#[cfg(target_os = "linux")]
pub fn listener(pid: u32, port: u16) -> std::io::Result<Listener> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return Ok(Listener::Nobody);
    }
    let mut own = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        if let Ok(target) = std::fs::read_link(entry?.path()) {
            if let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            {
                own.push(inode);
            }
        }
    }
    Ok(if inodes.iter().all(|i| own.contains(i)) {
        Listener::Mine
    } else {
        Listener::Other
    })
}

/// Inodes of the sockets in LISTEN state (0A) on `port`, any address, from
/// a /proc/net/tcp table.
#[cfg(any(target_os = "linux", test))]
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let listening = *f.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(target_os = "macos")]
pub fn listener(pid: u32, port: u16) -> std::io::Result<Listener> {
    let out = std::process::Command::new("/usr/sbin/lsof")
        .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-Fp"])
        .output()?;
    Ok(from_pids(
        &lsof_pids(&String::from_utf8_lossy(&out.stdout)),
        pid,
    ))
}

/// The pids in `lsof -Fp` output (lines `p<pid>`).
#[cfg(any(target_os = "macos", test))]
fn lsof_pids(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.strip_prefix('p')?.parse().ok())
        .collect()
}

#[cfg(any(target_os = "macos", windows, test))]
fn from_pids(pids: &[u32], pid: u32) -> Listener {
    match pids {
        [] => Listener::Nobody,
        all if all.iter().all(|p| *p == pid) => Listener::Mine,
        _ => Listener::Other,
    }
}

#[cfg(windows)]
pub fn listener(pid: u32, port: u16) -> std::io::Result<Listener> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetExtendedTcpTable, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID,
        TCP_TABLE_OWNER_PID_LISTENER,
    };
    use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};

    /// Every (local port, owning pid) of one address family's listeners.
    fn table<Row>(
        family: u16,
        row: impl Fn(&Row) -> (u32, u32),
    ) -> std::io::Result<Vec<(u16, u32)>> {
        let mut size = 0u32;
        // SAFETY: the first call only asks for the size.
        unsafe {
            GetExtendedTcpTable(
                std::ptr::null_mut(),
                &mut size,
                0,
                family as u32,
                TCP_TABLE_OWNER_PID_LISTENER,
                0,
            );
        }
        let mut buf = vec![0u8; size as usize + 4096];
        let mut size = buf.len() as u32;
        // SAFETY: buf holds `size` bytes; the call fills a table of rows.
        let rc = unsafe {
            GetExtendedTcpTable(
                buf.as_mut_ptr().cast(),
                &mut size,
                0,
                family as u32,
                TCP_TABLE_OWNER_PID_LISTENER,
                0,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc as i32));
        }
        // The table: a u32 count, then the rows (aligned as the row type).
        let count = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let align = std::mem::align_of::<Row>().max(4);
        let rows = buf[align..].as_ptr().cast::<Row>();
        Ok((0..count)
            .map(|i| {
                // SAFETY: the system wrote `count` rows after the count.
                let (local_port, owner) = row(unsafe { &*rows.add(i) });
                // The port is in network byte order in the low 16 bits.
                (u16::from_be(local_port as u16), owner)
            })
            .collect())
    }

    let mut rows = table::<MIB_TCPROW_OWNER_PID>(AF_INET, |r| (r.dwLocalPort, r.dwOwningPid))?;
    rows.extend(table::<MIB_TCP6ROW_OWNER_PID>(AF_INET6, |r| {
        (r.dwLocalPort, r.dwOwningPid)
    })?);
    let pids: Vec<u32> = rows
        .into_iter()
        .filter(|(p, _)| *p == port)
        .map(|(_, pid)| pid)
        .collect();
    // Pid 0 (the idle process) owns no socket on Windows; Wine reports it
    // for every socket.
    if !pids.is_empty() && pids.iter().all(|&p| p == 0) && wine::running_under_wine() {
        return wine::listener(port);
    }
    Ok(from_pids(&pids, pid))
}

/// Wine 8 does not tell which process owns a socket (it reports pid 0). It
/// runs on Linux, whose /proc (drive Z:) tells which user owns it: a
/// listener of this process's own user is accepted, so another local user
/// still cannot pose as the server. Only under Wine; Windows itself tells.
#[cfg(windows)]
mod wine {
    use super::Listener;

    pub fn running_under_wine() -> bool {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
        // SAFETY: looks up an export of the already loaded ntdll by name.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
        }
    }

    pub fn listener(port: u16) -> std::io::Result<Listener> {
        let status = std::fs::read_to_string(r"Z:\proc\self\status")?;
        let me = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .ok_or_else(|| std::io::Error::other("no effective uid in /proc/self/status"))?
            .to_owned();
        let mut owners = Vec::new();
        for table in [r"Z:\proc\net\tcp", r"Z:\proc\net\tcp6"] {
            if let Ok(text) = std::fs::read_to_string(table) {
                owners.extend(listening_uids(&text, port));
            }
        }
        Ok(match owners {
            o if o.is_empty() => Listener::Nobody,
            o if o.iter().all(|uid| *uid == me) => Listener::Mine,
            _ => Listener::Other,
        })
    }

    /// The owning uids of the sockets listening on `port` in a /proc/net/tcp table.
    pub fn listening_uids(table: &str, port: u16) -> Vec<String> {
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit(':').next()?;
                let listening = fields.get(3)? == &"0A";
                (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| fields.get(7).map(|u| u.to_string()))
                    .flatten()
            })
            .collect()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub fn listener(_pid: u32, _port: u16) -> std::io::Result<Listener> {
    Err(std::io::Error::other(
        "this system cannot tell who listens on a port",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 23456 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 34567 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_the_listening_sockets_of_a_port_only() {
        assert_eq!(listening_inodes(TABLE, 8080), [12345]);
        assert_eq!(listening_inodes(TABLE, 80), [34567]);
        assert!(listening_inodes(TABLE, 443).is_empty());
    }

    #[cfg(windows)]
    #[test]
    fn reads_the_owning_users_of_a_ports_listeners_from_a_linux_table() {
        assert_eq!(wine::listening_uids(TABLE, 8080), ["0"]);
        assert!(wine::listening_uids(TABLE, 80).len() == 1);
        assert!(wine::listening_uids(TABLE, 9).is_empty());
    }

    #[test]
    fn reads_lsof_and_owner_lists() {
        assert_eq!(lsof_pids("p123\nf7\np456\nf8\n"), [123, 456]);
        assert_eq!(from_pids(&[], 1), Listener::Nobody);
        assert_eq!(from_pids(&[7, 7], 7), Listener::Mine);
        assert_eq!(from_pids(&[7, 9], 7), Listener::Other);
    }

    #[cfg(any(target_os = "linux", windows))]
    #[test]
    fn a_socket_of_this_process_is_mine_and_of_another_process_is_not() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(listener(std::process::id(), port).unwrap(), Listener::Mine);
        #[cfg(windows)]
        if wine::running_under_wine() {
            // WINE LIMIT: it tells the socket's user, not its process.
            assert_eq!(listener(1, port).unwrap(), Listener::Mine);
            drop(socket);
            assert_eq!(
                listener(std::process::id(), port).unwrap(),
                Listener::Nobody
            );
            return;
        }
        // pid 1 does not hold this socket.
        assert_eq!(
            listener(1, port).unwrap_or(Listener::Other),
            Listener::Other
        );
        drop(socket);
        assert_eq!(
            listener(std::process::id(), port).unwrap(),
            Listener::Nobody
        );
    }
}
