//! Any text as a QR (parse + freshness), and any bytes as frames into an established channel (split at
//! 0xff bytes, so one input can be several frames). Never a panic; a bad frame breaks the channel.
#![allow(dead_code)]

use kalit_core::session::{PhoneHandshake, Qr, agent_respond};

/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(qr) = Qr::parse(text)
    {
        let _ = qr.check_fresh(1_800_000_000);
        let _ = qr.tunnel_id();
        let _ = PhoneHandshake::start(&qr);
    }
    let Ok((qr, secrets)) = Qr::new("http://127.0.0.1:1", "relay", "https://portal.example", 60, 1000) else { return };
    let Ok((hs, m1)) = PhoneHandshake::start(&qr) else { return };
    // Message 1 replaced by fuzz input on one path, the real one on the other.
    let _ = agent_respond(&qr, &secrets, data);
    let Ok((m2, mut agent)) = agent_respond(&qr, &secrets, &m1) else { return };
    let _ = hs.finish(data);
    let Ok((hs, _)) = PhoneHandshake::start(&qr) else { return };
    let _ = hs.finish(&m2);
    for frame in data.split(|b| *b == 0xff) {
        if agent.open(frame).is_err() {
            assert!(agent.open(frame).is_err(), "a broken channel stays broken");
            break;
        }
    }
}
