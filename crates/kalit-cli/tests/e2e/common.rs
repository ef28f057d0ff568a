//! Helpers: run `kalit` with standard-input answers, find OpenSSL, make an OpenSSL CA.

use std::fs;
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

/// The answers for `kalit vault pair QR` on the vault in `dir`: a name for the computer first when the
/// phone has never seen the computer that made the QR (the phone asks it before anything else), then
/// `answers`.
pub fn pair_answers(dir: &Path, qr: &str, answers: &[&str]) -> Vec<String> {
    let mut out = vec![];
    // A page's QR (direct mode) has a key for one session: the phone asks no name for it.
    if let Ok(q) = kalit_core::session::Qr::parse(qr)
        && q.payload.mode.is_none()
    {
        let v = kalit_vault::Vault::open(dir).expect("open the phone's vault");
        if v.computer(&q.computer_id()).expect("known computers").is_none() {
            out.push("test computer".to_string());
        }
    }
    out.extend(answers.iter().map(|a| a.to_string()));
    out
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
        self_signed_p256(
            &key,
            &cert,
            &format!("/CN={name}/O=Test CA/C=UZ"),
            &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        );
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

/// A P-256 key and a self-signed certificate made by OpenSSL.
pub fn self_signed_p256(key: &Path, cert: &Path, subject: &str, extra: &[&str]) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(key),
        "-out",
        s(cert),
        "-days",
        "30",
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    ossl_ok(&args);
}

/// `openssl pkcs12 -export` of a key and certificate (plus `extra` arguments).
pub fn pfx_export(key: &Path, cert: &Path, password: &str, out: &Path, extra: &[&str]) {
    let pass = format!("pass:{password}");
    let mut args = vec!["pkcs12", "-export", "-inkey", s(key), "-in", s(cert), "-passout", &pass, "-out", s(out)];
    args.extend_from_slice(extra);
    ossl_ok(&args);
}

/// `openssl cms -verify`, except for Ed25519: OpenSSL 3.0 (this machine's) cannot sign or verify
/// Ed25519 CMS at all ("no default digest" / "invalid digest"), so OpenSSL judges each part instead.
pub fn openssl_cms_verify(sig: &Path, doc: &Path, ca: &Path) {
    let print = ossl_ok(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", s(sig)]);
    if print.contains("ED25519") {
        return openssl_check_ed25519_cms(sig, doc, &print);
    }
    ossl_ok(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        s(sig),
        "-content",
        s(doc),
        "-CAfile",
        s(ca),
        "-out",
        "/dev/null",
    ]);
}

/// OpenSSL parses the CMS (asn1parse), computes the document's SHA-512 (dgst) and verifies the Ed25519
/// signature over the DER signed attributes (pkeyutl -rawin) with the certificate the CMS carries.
fn openssl_check_ed25519_cms(sig: &Path, doc: &Path, print: &str) {
    assert!(print.contains("sha512"), "Ed25519 CMS must use SHA-512 (RFC 8419): {print}");
    let der = fs::read(sig).unwrap();
    let parse = ossl_ok(&["asn1parse", "-inform", "DER", "-in", s(sig)]);
    // Lines look like "  123:d=5  hl=2 l= 105 cons: cont [ 0 ]".
    let fields = |line: &str| -> (usize, usize, usize) {
        let off = line.split(':').next().unwrap().trim().parse().unwrap();
        let hl = line.split("hl=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        let l = line.split(" l=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        (off, hl, l)
    };
    let attrs_line = parse.lines().find(|l| l.contains("d=5") && l.contains("cont [ 0 ]")).expect("signed attributes");
    let (off, hl, l) = fields(attrs_line);
    let mut attrs = der[off..off + hl + l].to_vec();
    attrs[0] = 0x31; // [0] IMPLICIT -> SET OF, as RFC 5652 section 5.4 signs it
    let sig_line = parse.lines().rfind(|l| l.contains("d=5") && l.contains("OCTET STRING")).expect("signature");
    let (off, hl, l) = fields(sig_line);
    let signature = der[off + hl..off + hl + l].to_vec();
    let md_line =
        parse.lines().skip_while(|l| !l.contains(":messageDigest")).find(|l| l.contains("OCTET STRING")).unwrap();
    let md = md_line.rsplit(':').next().unwrap().trim().to_lowercase();
    let want = ossl_ok(&["dgst", "-sha512", "-r", s(doc)]);
    assert_eq!(md, want.split_whitespace().next().unwrap(), "messageDigest is not SHA-512 of the document");
    let dir = sig.parent().unwrap();
    let (a, g, c, p) = (dir.join("ed.attrs"), dir.join("ed.sig"), dir.join("ed.certs.pem"), dir.join("ed.pub.pem"));
    fs::write(&a, attrs).unwrap();
    fs::write(&g, signature).unwrap();
    // The signer's certificate: the Ed25519 one (a PAdES CMS also carries the P-256/RSA CA certificates,
    // in the DER order of a SET OF, so the first is not necessarily the signer's).
    let certs = ossl_ok(&["pkcs7", "-inform", "DER", "-in", s(sig), "-print_certs"]);
    let signer = certs
        .split("-----END CERTIFICATE-----")
        .filter_map(|c| {
            c.find("-----BEGIN CERTIFICATE-----").map(|i| format!("{}-----END CERTIFICATE-----\n", &c[i..]))
        })
        .find(|pem| {
            fs::write(&c, pem).unwrap();
            ossl_ok(&["x509", "-in", s(&c), "-noout", "-text"]).contains("ED25519")
        })
        .expect("an Ed25519 certificate in the CMS");
    fs::write(&c, signer).unwrap();
    fs::write(&p, ossl_ok(&["x509", "-in", s(&c), "-pubkey", "-noout"])).unwrap();
    let out = ossl_ok(&["pkeyutl", "-verify", "-pubin", "-inkey", s(&p), "-rawin", "-in", s(&a), "-sigfile", s(&g)]);
    assert!(out.contains("Success"), "{out}");
}

/// OpenSSL verifies a raw signature with the certificate's public key (`pkeyutl -rawin` for Ed25519,
/// `dgst -sha256` otherwise, PSS with a 32-byte salt).
pub fn verify_raw_with_openssl(alg: &str, pss: bool, cert: &Path, doc: &Path, sig: &Path, work: &Path) {
    let pubkey = work.join("pub.pem");
    fs::write(&pubkey, ossl_ok(&["x509", "-in", s(cert), "-pubkey", "-noout"])).unwrap();
    let out = if alg == "ed25519" {
        ossl_ok(&["pkeyutl", "-verify", "-pubin", "-inkey", s(&pubkey), "-rawin", "-in", s(doc), "-sigfile", s(sig)])
    } else if pss {
        ossl_ok(&[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
            s(&pubkey),
            "-signature",
            s(sig),
            s(doc),
        ])
    } else {
        ossl_ok(&["dgst", "-sha256", "-verify", s(&pubkey), "-signature", s(sig), s(doc)])
    };
    assert!(out.contains("Verified") || out.contains("Success"), "openssl said: {out}");
}
