//! Helpers: run `kalit` with standard-input answers, find OpenSSL, make an OpenSSL CA.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const PIN: &str = "246810";

/// Output of one `kalit` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    #[track_caller]
    pub fn fails(self, exit: i32, code: &str) -> Run {
        assert_eq!(self.code, exit, "expected exit {exit}\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.contains(&format!("error[{code}]")), "expected error[{code}] in: {}", self.stderr);
        self
    }
}

pub fn kalit_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kalit"));
    c.args(args).env_remove("KALIT_VAULT").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Runs `kalit ARGS` feeding `answers`, one per line, on standard input.
pub fn kalit(args: &[&str], answers: &[&str]) -> Run {
    let mut child = kalit_cmd(args).spawn().expect("spawn kalit");
    feed(&mut child, answers);
    let out = child.wait_with_output().expect("wait kalit");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn feed(child: &mut Child, answers: &[&str]) {
    let mut stdin = child.stdin.take().expect("stdin");
    let mut text = answers.join("\n");
    text.push('\n');
    let _ = stdin.write_all(text.as_bytes());
}

/// A vault directory with arguments for it.
pub struct V {
    pub dir: PathBuf,
}

impl V {
    /// A new vault (no PIN delays so tests run quickly; attempts limit as given).
    pub fn init(root: &Path, name: &str, max_attempts: u32) -> V {
        let dir = root.join(name);
        let v = V { dir };
        v.run(&["init", "--max-pin-attempts", &max_attempts.to_string(), "--pin-delay-ms", "0"], &[PIN, PIN]).ok();
        v
    }
    pub fn run(&self, args: &[&str], answers: &[&str]) -> Run {
        let mut full = vec!["vault", "--vault", self.dir.to_str().unwrap()];
        full.extend_from_slice(args);
        kalit(&full, answers)
    }
    pub fn generate(&self, alg: &str, label: &str) {
        self.run(&["generate", "--alg", alg, "--label", label], &[PIN]).ok();
    }
}

/// The `openssl` command, or `None` (with a printed reason) when it is missing. With
/// `KALIT_REQUIRE_OPENSSL=1` (set by CI) a missing OpenSSL fails the test instead.
pub fn openssl() -> Option<&'static str> {
    let ok = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if ok {
        return Some("openssl");
    }
    if std::env::var("KALIT_REQUIRE_OPENSSL").is_ok_and(|v| v == "1") {
        panic!("KALIT_REQUIRE_OPENSSL=1 but `openssl` is not on PATH");
    }
    println!("SKIPPED: `openssl` is not installed; OpenSSL interop checks did not run");
    None
}

/// Runs openssl with args; returns the output.
pub fn ossl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).stdin(Stdio::null()).output().expect("run openssl")
}

#[track_caller]
pub fn ossl_ok(args: &[&str]) -> String {
    let o = ossl(args);
    assert!(
        o.status.success(),
        "openssl {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CA made with OpenSSL: `ca.pem`, `ca.key`, and an extensions file for document-signing leaves.
pub struct OpensslCa {
    pub cert: PathBuf,
    pub key: PathBuf,
    ext: PathBuf,
}

impl OpensslCa {
    pub fn new(dir: &Path, name: &str) -> OpensslCa {
        std::fs::create_dir_all(dir).unwrap();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let ext = dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        ossl_ok(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}/O=Test CA/C=UZ"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        OpensslCa { cert, key, ext }
    }

    /// Issues a certificate for a CSR.
    pub fn sign_csr(&self, csr: &Path, out: &Path) {
        ossl_ok(&[
            "x509",
            "-req",
            "-in",
            s(csr),
            "-CA",
            s(&self.cert),
            "-CAkey",
            s(&self.key),
            "-CAcreateserial",
            "-days",
            "10",
            "-extfile",
            s(&self.ext),
            "-extensions",
            "leaf",
            "-out",
            s(out),
        ]);
    }
}

/// Every file below `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}
