//! `kalit bench stream`: a large document streamed to the phone through the relay on loopback (page ->
//! agent -> relay -> phone in parts, the phone hashing as they come, a CMS back, checked by the agent),
//! against a plain copy of the same number of bytes through the same relay in the same run: one tunnel,
//! raw binary frames of the largest size from the waiting side to the joined side, nothing else.

use std::path::Path;
use std::time::Instant;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use kalit_core::ceremony;
use kalit_core::statement::Statement;
use kalit_phone::Client;
use kalit_proto::ErrorCode;
use kalit_proto::relay::NonceResponse;
use kalit_proto::session::{MAX_FRAME, SessionCreated, SignDocResponse};
use tokio_tungstenite::tungstenite::Message;

use crate::bench_session::{BenchStack, bench_stack};
use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct StreamBenchArgs {
    /// Size of the document, MiB (at most what a phone takes whole: 64).
    #[arg(long, default_value_t = 64)]
    mib: usize,
    /// Runs of each (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print Markdown (for docs/PERFORMANCE.md).
    #[arg(long)]
    markdown: bool,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

pub fn run(a: StreamBenchArgs) -> CliResult {
    if a.mib == 0 || a.mib > 64 {
        return Err(CliError::new(ErrorCode::Usage, "--mib must be 1..=64 (larger documents take the digest path)"));
    }
    let tmp = crate::demo::tempdir()?;
    let r = bench(&a, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

fn bench(a: &StreamBenchArgs, tmp: &Path) -> CliResult {
    let stack = bench_stack(tmp)?;
    let len = a.mib << 20;
    let doc: Vec<u8> = (0..len).map(|i| b"Shartnoma matni, satr. "[i % 23]).collect();
    let runs = a.runs.max(1);
    let (mut kalit, mut plain) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        eprintln!("run {}/{runs}: {} MiB through Kalit, then as a plain copy...", i + 1, a.mib);
        kalit.push(signed(&stack, &doc)?);
        plain.push(copied(&stack, len)?);
    }
    let (k, p) = (crate::bench::median(&mut kalit), crate::bench::median(&mut plain));
    let mibs = |secs: f64| a.mib as f64 / secs;
    let rows = [
        (
            format!("plain copy of {} MiB through the relay (baseline)", a.mib),
            format!("{:.0} MiB/s", mibs(p)),
            format!("{:.0} ms", p * 1e3),
        ),
        (
            format!(
                "{} MiB signed: page -> agent -> relay -> phone (hashing) -> CMS -> agent (checked) -> page",
                a.mib
            ),
            format!("{:.0} MiB/s", mibs(k)),
            format!("{:.0} ms; {:.2}x the plain copy's throughput", k * 1e3, p / k),
        ),
    ];
    if a.markdown {
        println!("| measurement | throughput | detail |\n|---|---|---|");
        for (w, v, d) in &rows {
            println!("| {w} | {v} | {d} |");
        }
    } else {
        for (w, v, d) in &rows {
            println!("{w:<96} {v:>10}  {d}");
        }
    }
    drop(stack);
    Ok(())
}

/// One signature of `doc` (CMS, sent as its bytes) through a fresh session; seconds from the page's
/// request to the checked answer.
fn signed(s: &BenchStack, doc: &[u8]) -> CliResult<f64> {
    let u = s.vault.unlock(&s.pin)?;
    let mut page = Client::page(&s.agent_url, &s.origin)?;
    let created: SessionCreated = page.post("/v1/sessions", Some(&serde_json::json!({})))?;
    page.set_token(Some(created.token.clone()));
    let path = format!("/v1/sessions/{}", created.session);
    std::thread::scope(|scope| {
        let phone = scope.spawn(|| {
            let mut ui = kalit_phone::pair::AutoUi { unlocked: &u, verbose: false };
            kalit_phone::pair::pair(&s.vault, &created.qr, None, &mut ui).map_err(CliError::from)
        });
        let r = (|| {
            crate::demo::wait_connected(&page, &path)?;
            let t = Instant::now();
            let out: SignDocResponse =
                page.post_bytes(&format!("{path}/sign?name=bench.txt&format=cms"), doc.to_vec())?;
            let secs = t.elapsed().as_secs_f64();
            if out.format != kalit_proto::session::DocFormat::Cms {
                return Err(internal("the agent answered another format"));
            }
            Ok::<_, CliError>(secs)
        })();
        let _ = page.delete(&path);
        phone.join().map_err(|_| internal("phone thread panicked"))??;
        r
    })
}

/// The same number of bytes as raw binary frames through one tunnel of the same relay (the phone's
/// device joins it as a phone does); seconds from the first frame sent to the last received.
fn copied(s: &BenchStack, len: usize) -> CliResult<f64> {
    let me = s.vault.devices()?.into_iter().next().ok_or_else(|| internal("no registration"))?;
    let u = s.vault.unlock(&s.pin)?;
    let tunnel = hex::encode(kalit_core::seal::random::<32>().map_err(CliError::from)?);
    let relay = Client::new(&s.relay_url, "relay")?;
    let n: NonceResponse = relay.post::<(), _>("/v1/nonce", None)?;
    let nonce = ceremony::check_nonce(&n.nonce)?;
    let st = Statement::device_request(
        &me.relay_id,
        &nonce,
        &me.login,
        &me.device_id,
        kalit_proto::namespace::TUNNEL_JOIN,
        &tunnel,
    );
    let join = kalit_phone::pair::join_request(&me, &tunnel, &nonce, &u.sign_as_device(&me.device_id, &st)?);
    let wait_url = kalit_transport::ws_url(&s.relay_url, &format!("/v1/tunnel/{tunnel}/wait?ttl=60"))?;
    let join_url = kalit_transport::ws_url(&s.relay_url, &format!("/v1/tunnel/{tunnel}/join"))?;
    let join_text = serde_json::to_string(&join).map_err(internal)?;
    s.svc.rt.block_on(async move {
        let mut agent = kalit_transport::connect(&wait_url).await?;
        agent.next().await; // ready
        let mut phone = kalit_transport::connect(&join_url).await?;
        phone.send(Message::Text(join_text.into())).await.map_err(internal)?;
        phone.next().await; // joined
        agent.next().await; // peer
        let frame = vec![7u8; MAX_FRAME];
        let t = Instant::now();
        let sender = async {
            let mut left = len;
            while left > 0 {
                let n = left.min(MAX_FRAME);
                agent.send(Message::Binary(frame[..n].to_vec().into())).await.map_err(internal)?;
                left -= n;
            }
            Ok::<_, CliError>(agent)
        };
        let receiver = async {
            let mut got = 0usize;
            while got < len {
                match phone.next().await {
                    Some(Ok(Message::Binary(b))) => got += b.len(),
                    Some(Ok(_)) => {}
                    _ => return Err(internal("the tunnel closed before all bytes came")),
                }
            }
            Ok::<_, CliError>(phone)
        };
        let (agent, phone) = tokio::try_join!(sender, receiver)?;
        let secs = t.elapsed().as_secs_f64();
        drop((agent, phone));
        Ok::<_, CliError>(secs)
    })
}
