// The admin server binds to admin.host (loopback by default), separately from server.host — real binary, real sockets.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::deadlines::gateway;

/// Whether something accepts TCP connections at `ip:port`.
fn listening(ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

#[test]
fn the_admin_server_binds_where_admin_host_says_not_where_server_host_does() {
    // The API on another loopback address; the admin server stays on the
    // default 127.0.0.1 (the harness waits for /ready there).
    let gw = gateway(&[("PGRPC_SERVER_HOST", "127.0.0.2")]);
    assert!(listening("127.0.0.2", gw.port), "the API is on server.host");
    assert!(
        !listening("127.0.0.1", gw.port),
        "the API is only on server.host"
    );
    assert!(listening("127.0.0.1", gw.admin), "admin is on 127.0.0.1");
    assert!(
        !listening("127.0.0.2", gw.admin),
        "admin must not follow server.host"
    );
    drop(gw);

    // Told to bind everywhere (as in the container), it answers on every address.
    let gw = gateway(&[
        ("PGRPC_SERVER_HOST", "127.0.0.2"),
        ("PGRPC_ADMIN_HOST", "0.0.0.0"),
    ]);
    assert!(listening("127.0.0.2", gw.admin), "admin on 0.0.0.0");
    let ready = ureq::get(&format!("http://127.0.0.2:{}/ready", gw.admin))
        .timeout(Duration::from_secs(5))
        .call()
        .expect("/ready on another address");
    assert_eq!(ready.status(), 200);
}
