//! The attacks from the paper's design, each with a relay that misbehaves: a proxy in front of the real
//! relay that the agent uses as its relay (the phone keeps its registered address, as it does when a QR
//! names another one). It sees exactly what a relay sees, and tampers with, injects or swaps frames.
//! The channel must abort: nothing decrypted, shown or signed, and no signature reaches the page.

use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message as AxMsg, WebSocketUpgrade};
use axum::extract::{Path as AxPath, RawQuery, State};
use axum::response::IntoResponse;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as TMsg;

use crate::common::PIN;
use crate::signing::{Page, agent_serve, finish, pair, stack};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Forward faithfully.
    Honest,
    /// Flip one bit of the agent's sign request on its way to the phone (would swap the document or hash).
    FlipRequest,
    /// Put the handshake answer again where the sign request should be (an injected frame).
    InjectReplay,
    /// Flip one bit of the phone's answer on its way to the agent.
    FlipAnswer,
    /// Remember the sign request of this session...
    Record,
    /// ...and deliver it instead of this session's own (a frame from another session).
    SwapIn,
    /// Drop the connection when the phone's answer passes (the phone approved, then the link died).
    CutAnswer,
    /// Answer the agent with garbage instead of the phone's answer.
    Garbage,
}

#[derive(Clone)]
struct Evil {
    real: String,
    mode: Arc<Mutex<Mode>>,
    recorded: Arc<Mutex<Option<Vec<u8>>>>,
}

async fn well_known(State(e): State<Evil>) -> impl IntoResponse {
    let body = reqwest::get(format!("{}/.well-known/kalit-relay", e.real)).await.unwrap().text().await.unwrap();
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
}

async fn wait(
    State(e): State<Evil>,
    AxPath(id): AxPath<String>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    let url = kalit_transport::ws_url(&e.real, &format!("/v1/tunnel/{id}/wait?{}", q.unwrap_or_default())).unwrap();
    ws.on_upgrade(move |agent| async move {
        let Ok(relay) = kalit_transport::connect(&url).await else { return };
        let mode = *e.mode.lock().unwrap();
        let (mut a_tx, mut a_rx) = agent.split();
        let (mut r_tx, mut r_rx) = relay.split();
        let to_phone = async {
            let mut n = 0;
            while let Some(Ok(m)) = a_rx.next().await {
                let TMsgOrSkip::Msg(m) = from_axum(m) else { continue };
                if let TMsg::Binary(b) = &m {
                    n += 1;
                    let mut b = b.to_vec();
                    match (mode, n) {
                        (Mode::FlipRequest, 2) => b[20] ^= 0x01,
                        (Mode::InjectReplay, 2) => {
                            let first = e.recorded.lock().unwrap().clone().unwrap();
                            let _ = r_tx.send(TMsg::Binary(first.into())).await;
                        }
                        (Mode::InjectReplay, 1) => *e.recorded.lock().unwrap() = Some(b.clone()),
                        (Mode::Record, 2) => *e.recorded.lock().unwrap() = Some(b.clone()),
                        (Mode::SwapIn, 2) => b = e.recorded.lock().unwrap().clone().unwrap(),
                        _ => {}
                    }
                    if r_tx.send(TMsg::Binary(b.into())).await.is_err() {
                        break;
                    }
                } else if r_tx.send(m).await.is_err() {
                    break;
                }
            }
        };
        let to_agent = async {
            let mut n = 0;
            while let Some(Ok(m)) = r_rx.next().await {
                let out = match m {
                    TMsg::Binary(b) => {
                        n += 1;
                        let mut b = b.to_vec();
                        if mode == Mode::FlipAnswer && n == 3 {
                            let i = b.len() / 2;
                            b[i] ^= 0x80;
                        }
                        if mode == Mode::CutAnswer && n == 3 {
                            break;
                        }
                        if mode == Mode::Garbage && n == 3 {
                            AxMsg::Text("<html>502 Bad Gateway</html>".into())
                        } else {
                            AxMsg::Binary(b.into())
                        }
                    }
                    TMsg::Text(t) => AxMsg::Text(t.as_str().into()),
                    TMsg::Close(_) => break,
                    _ => continue,
                };
                if a_tx.send(out).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! { () = to_phone => {}, () = to_agent => {} }
    })
}

enum TMsgOrSkip {
    Msg(TMsg),
    Skip,
}

fn from_axum(m: AxMsg) -> TMsgOrSkip {
    match m {
        AxMsg::Binary(b) => TMsgOrSkip::Msg(TMsg::Binary(b.to_vec().into())),
        AxMsg::Text(t) => TMsgOrSkip::Msg(TMsg::Text(t.as_str().into())),
        _ => TMsgOrSkip::Skip,
    }
}

fn history_len(v: &crate::common::V) -> usize {
    let out = v.run(&["history", "--json"], &[]).ok().stdout;
    serde_json::from_str::<Vec<serde_json::Value>>(&out).map(|h| h.len()).unwrap_or(0)
}

#[test]
fn a_relay_that_tampers_injects_or_swaps_frames_gets_no_signature_out() {
    let origin = "https://portal.example";
    let st = stack(&[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let evil = Evil { real: st.relay_url.clone(), mode: Arc::new(Mutex::new(Mode::Honest)), recorded: Arc::default() };
    let app = axum::Router::new()
        .route("/.well-known/kalit-relay", axum::routing::get(well_known))
        .route("/v1/tunnel/{id}/wait", axum::routing::get(wait))
        .with_state(evil.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let evil_url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    // An agent whose relay is the evil one (same relay id and key: it only forwards).
    let data = st.root.path().join("agent-evil");
    let agent = agent_serve(&data, &[origin], &evil_url, &st.ra.ca(), &["--sessions-per-minute", "0"]);
    let v = st.phone("phone", "p-256", "ali");
    let page = Page::new(&agent.url, origin);
    let doc = b"Pay 100 to Ali".as_slice();
    let run = |mode: Mode, answers: &[&str]| {
        *evil.mode.lock().unwrap() = mode;
        let c = page.start(None);
        let phone = pair(&v, &c.qr, answers);
        let state = page.wait(&c, "connected");
        assert_eq!(state["phase"], "connected", "{mode:?}: the handshake itself is not touched: {state}");
        let (code, r) = page.sign(&c, doc, "raw", false);
        page.end(&c);
        let (pcode, out, err) = finish(phone);
        (code, r, pcode, out, err)
    };
    // Honest forwarding works (the proxy is not broken).
    let (code, r, pcode, ..) = run(Mode::Honest, &[PIN, "y", PIN]);
    assert_eq!((code, pcode), (200, 0), "{r}");
    let signed = history_len(&v);
    // A changed request: the phone's channel aborts before anything is shown or signed.
    for mode in [Mode::FlipRequest, Mode::InjectReplay] {
        let (code, r, pcode, out, err) = run(mode, &[PIN, "y", PIN]);
        assert_ne!(code, 200, "{mode:?}: {r}");
        assert!(r.get("signature").is_none());
        assert_eq!(pcode, 24, "{mode:?}: the phone stops with error[channel]: {out}{err}");
        assert!(err.contains("error[channel]"), "{err}");
        assert!(!out.contains("Sign request"), "{mode:?}: nothing is shown: {out}");
        assert_eq!(history_len(&v), signed, "{mode:?}: nothing is signed");
    }
    // A frame from another session: record one session's request, deliver it in the next one.
    let (code, ..) = run(Mode::Record, &[PIN, "y", PIN]);
    assert_eq!(code, 200);
    let signed = history_len(&v);
    let (code, r, pcode, out, err) = run(Mode::SwapIn, &[PIN, "y", PIN]);
    assert_ne!(code, 200, "{r}");
    assert_eq!(pcode, 24, "{out}{err}");
    assert_eq!(history_len(&v), signed);
    // A changed answer: the phone signed, but the agent's channel aborts and the page gets no signature.
    let (code, r, ..) = run(Mode::FlipAnswer, &[PIN, "y", PIN]);
    assert_eq!((code, r["error"]["code"].as_str()), (502, Some("channel")), "{r}");
    assert!(r.get("signature").is_none());
    // The link dies after the phone approved, or the relay answers garbage: a clean, retryable error, and
    // the signature never turns up later in another session (the next one signs its own document).
    for mode in [Mode::CutAnswer, Mode::Garbage] {
        let (code, r, ..) = run(mode, &[PIN, "y", PIN]);
        assert_eq!((code, r["error"]["code"].as_str()), (503, Some("unavailable")), "{mode:?}: {r}");
        assert!(r.get("signature").is_none());
    }
    *evil.mode.lock().unwrap() = Mode::Honest;
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let other = b"the next session's own document";
    let (code, r) = page.sign(&c, other, "raw", false);
    assert_eq!(code, 200, "{r}");
    let want = kalit_core::digest::HashAlg::Sha256.digest(other);
    assert_eq!(r["sha256"].as_str().unwrap(), hex::encode(want));
    page.end(&c);
    assert_eq!(finish(phone).0, 0);
}
