//! The container image, built from the binary these tests run (`make test` builds it statically)
//! with the project's Dockerfile by Podman. Containers cannot run on these machines, so the
//! image's filesystem is exported and its entrypoint run under `chroot` as the image's user:
//! with no libc in the image, a binary that needed one could not start. It also finds InfluxDB
//! through DNS as in a pod (search domains, a nameserver), which a static glibc must do itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "65532:65532";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--storage-driver=vfs");
    cmd
}

/// The image, built once for this run's tests, with its filesystem unpacked.
struct Image {
    tag: String,
    rootfs: PathBuf,
    config: serde_json::Value,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "-f", &self.tag]).output();
        let _ = std::fs::remove_dir_all(&self.rootfs);
    }
}

fn build() -> Image {
    let tag = format!("localhost/kubemeter-test:{}", std::process::id());
    let script = root().join("scripts/image.sh");
    run(Command::new(&script).args(["build", env!("CARGO_BIN_EXE_kubemeter"), &tag]));
    let rootfs = crate::helpers::temp_dir("rootfs");
    run(Command::new(&script).args(["export", &tag, rootfs.to_str().unwrap()]));
    let inspect = run(podman().args(["image", "inspect", &tag]));
    let config: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    Image {
        tag,
        rootfs,
        config: config[0]["Config"].clone(),
    }
}

fn image_env(image: &Image) -> BTreeMap<String, String> {
    image.config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The entrypoint with `args`, in the image's filesystem, as the image's user.
fn chroot(image: &Image, args: &[&str]) -> Command {
    let mut cmd = Command::new("chroot");
    cmd.arg(format!("--userspec={USER}"))
        .arg(&image.rootfs)
        .arg(image.config["Entrypoint"][0].as_str().unwrap())
        .args(args)
        .env_clear()
        .envs(image_env(image));
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Built once (a build copies the whole binary): both checks run on the same image.
#[test]
fn the_image_runs_a_static_kubemeter_as_a_non_root_user_on_a_read_only_root() {
    let image = build();
    is_a_static_kubemeter_on_an_empty_base_run_as_a_non_root_user(&image);
    serve_starts_on_a_read_only_root_and_finds_influxdb_by_name(&image);
}

fn is_a_static_kubemeter_on_an_empty_base_run_as_a_non_root_user(image: &Image) {
    assert_eq!(image.config["User"], USER);
    assert_eq!(image.config["Entrypoint"][0], "/usr/local/bin/kubemeter");
    assert_eq!(image.config["Cmd"][0], "serve");
    let env = image_env(image);
    assert_eq!(env.get("KUBEMETER_LOG_DIR").map(String::as_str), Some(""));
    assert_eq!(
        env.get("KUBEMETER_LISTEN").map(String::as_str),
        Some("0.0.0.0:8000")
    );

    let fs = &image.rootfs;
    assert!(
        fs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "the CA bundle"
    );
    assert!(
        !fs.join("bin/sh").exists() && !fs.join("lib").exists(),
        "no shell, no libc"
    );
    let passwd = std::fs::read_to_string(fs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("kubemeter:x:65532:65532"), "{passwd}");

    let version = run(&mut chroot(image, &["--version"]));
    assert_eq!(
        version.trim(),
        format!("kubemeter {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&mut chroot(image, &["serve", "--help"]));
    assert!(help.contains("KUBEMETER_LISTEN"), "{help}");
    let id = run(&mut chroot(image, &["createuser", "--help"]));
    assert!(id.contains("--password-stdin"));
}

/// `serve` from the image on a read-only root, with a tmpfs as its data volume, finding
/// InfluxDB as a pod does: the short name `influxdb`, the namespace's search domains and a
/// cluster DNS server (a small one in this test). glibc linked statically resolves without
/// NSS modules, from /etc/resolv.conf and /etc/hosts.
fn serve_starts_on_a_read_only_root_and_finds_influxdb_by_name(image: &Image) {
    let influx = std::env::var("KUBEMETER_TEST_INFLUX_URL").unwrap();
    let influx_port = influx.rsplit(':').next().unwrap().trim_end_matches('/');
    let dns = dns::Server::start("influxdb.kubemeter.svc.cluster.local");
    let fs = image.rootfs.to_str().unwrap().to_string();
    std::fs::write(image.rootfs.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(
        image.rootfs.join("etc/resolv.conf"),
        format!(
            "search kubemeter.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver {}\noptions ndots:5 timeout:1 attempts:2\n",
            dns.ip
        ),
    )
    .unwrap();
    let port = free_port();
    // A private mount namespace: the root read-only, the data folder a tmpfs the user owns.
    let script = format!(
        "mount --bind {fs} {fs} && mount -o remount,bind,ro {fs} && \
         mount -t tmpfs -o uid=65532,gid=65532,mode=0700 data {fs}/var/lib/kubemeter && \
         exec chroot --userspec={USER} {fs} /usr/local/bin/kubemeter serve"
    );
    let mut env = image_env(image);
    env.insert("KUBEMETER_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert("INFLUXDB_HOST".into(), "influxdb".into());
    env.insert("INFLUXDB_PORT".into(), influx_port.into());
    env.insert("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut child = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .env_clear()
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_for(&format!("{base}/readyz"), Duration::from_secs(30));
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        stdout.push_str(&line.unwrap_or_default());
        stdout.push('\n');
    }
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
    let asked = dns.stop();
    assert_eq!(
        ready,
        Some(200),
        "/readyz; stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        asked
            .iter()
            .any(|q| q == "influxdb.kubemeter.svc.cluster.local"),
        "InfluxDB was found through the DNS server: {asked:?}"
    );
    assert!(
        status.success(),
        "serve stops cleanly on SIGTERM: {status:?} {stderr}"
    );
    assert!(
        stdout.contains("kubemeter serving"),
        "logs on stdout: {stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "no colour codes off a terminal");
}

/// A cluster DNS server in miniature: answers A queries for one name with 127.0.0.1, says
/// the name does not exist to every other query, and records what it was asked.
mod dns {
    use std::net::UdpSocket;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    pub struct Server {
        pub ip: String,
        asked: Arc<Mutex<Vec<String>>>,
        stop: Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        /// On port 53 (resolv.conf has no port) of a loopback address of its own.
        pub fn start(name: &str) -> Server {
            let socket = (150..250)
                .find_map(|n| UdpSocket::bind(format!("127.0.53.{n}:53")).ok())
                .expect("a free loopback address for the DNS server (the tests run as root)");
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let ip = socket.local_addr().unwrap().ip().to_string();
            let asked = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (name, log, done) = (name.to_string(), asked.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some((qname, reply)) = answer(&buf[..n], &name) {
                        log.lock().unwrap().push(qname);
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            });
            Server {
                ip,
                asked,
                stop,
                thread: Some(thread),
            }
        }

        /// Stops the server; returns the names it was asked about.
        pub fn stop(mut self) -> Vec<String> {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            self.asked.lock().unwrap().clone()
        }
    }

    /// The queried name and the reply to a query (RFC 1035 message format).
    fn answer(query: &[u8], name: &str) -> Option<(String, Vec<u8>)> {
        let (mut labels, mut i) = (Vec::new(), 12);
        while *query.get(i)? != 0 {
            let len = usize::from(query[i]);
            labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_string());
            i += 1 + len;
        }
        let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
        let end = i + 5;
        let qname = labels.join(".");
        let found = qname.eq_ignore_ascii_case(name);
        let a = found && qtype == 1;
        let mut reply = query[..2].to_vec();
        // QR, RD, RA; NXDOMAIN unless the name is ours (then no error, with or without an A).
        reply.extend_from_slice(&[0x81, if found { 0x80 } else { 0x83 }]);
        reply.extend_from_slice(&[0, 1, 0, u8::from(a), 0, 0, 0, 0]);
        reply.extend_from_slice(query.get(12..end)?);
        if a {
            // A pointer to the question's name, type A, class IN, TTL 30 s, 127.0.0.1.
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1]);
        }
        Some((qname, reply))
    }
}

/// The status of `GET url` once it answers, within `limit`.
fn wait_for(url: &str, limit: Duration) -> Option<u16> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(status) = get_status(url) {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// The status of a plain `GET` over the standard library (the tests' reqwest client is async).
fn get_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))
}
