//! A real mosquitto for the tests that need a broker (`ingest_mqtt`,
//! `browser`): started on a free loopback port from a throw-away config,
//! killed on drop; and a QoS 1 publisher that waits for each PUBACK.
//! Requires the `mosquitto` binary (`scripts/test.sh` installs it); without
//! it the tests fail with a message saying so.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

pub fn mosquitto_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/local/sbin",
        "/sbin",
    ]) {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!("the `mosquitto` broker is not installed: these tests need it (run .ci/run, or `apt-get install -y mosquitto`)");
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Waits (10 s at most) until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto on a free loopback port, killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start(extra_conf: &str) -> Broker {
        let bin = mosquitto_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nmax_queued_messages 0\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n{extra_conf}\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
            .spawn()
            .expect("cannot start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payloads` at QoS 1, each after the previous one's PUBACK.
pub fn publish_all(port: u16, items: Vec<(String, Vec<u8>)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut o = MqttOptions::new(
            format!("test-pub-{port}-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 16);
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = ack_tx.send(a.pkid);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("publisher connection failed: {e}"),
                }
            }
        });
        for (topic, payload) in items {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(10), ack_rx.recv())
                .await
                .expect("no PUBACK within 10s")
                .unwrap();
        }
        let _ = client.disconnect().await;
    });
}
