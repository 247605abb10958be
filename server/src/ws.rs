//! The websocket session, written against `Sink`/`Stream` so tests can drive it without a
//! socket. A session greets the client, answers pings, and streams the run it subscribes to:
//! stored epochs first, then live ones, in order, never twice, with no gap even when it lags.

use std::sync::Arc;

use actiscope_protocol::{ClientMessage, RunSummary, ServerInfo, ServerMessage, decode, encode};
use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::hub::{Hub, HubEvent};

/// Why a websocket session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed the connection or the stream ended.
    ClientClosed,
    /// Sending to the client failed (it went away).
    SendFailed,
}

/// The run a session follows and the last epoch it has sent.
#[derive(Debug, Clone, Copy)]
struct Subscription {
    run_id: i64,
    last_sent: u32,
}

struct Session<S> {
    sink: S,
    hub: Hub,
    subscription: Option<Subscription>,
}

impl<S: Sink<Message> + Unpin> Session<S> {
    async fn send(&mut self, message: &ServerMessage) -> Result<(), SessionEnd> {
        let frame = encode(message).map_err(|_| SessionEnd::SendFailed)?;
        self.sink
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|_| SessionEnd::SendFailed)
    }

    /// Sends a frame encoded elsewhere (the hub's cached epoch and image frames).
    async fn send_frame(&mut self, frame: bytes::Bytes) -> Result<(), SessionEnd> {
        self.sink
            .send(Message::Binary(frame))
            .await
            .map_err(|_| SessionEnd::SendFailed)
    }

    async fn error(&mut self, reason: String) -> Result<(), SessionEnd> {
        self.send(&ServerMessage::Error { reason }).await
    }

    /// Sends the run list; returns it (shared with every session) when it could be read.
    async fn send_runs(&mut self) -> Result<Option<Arc<Vec<RunSummary>>>, SessionEnd> {
        match self.hub.blocking(Hub::runs_entry).await {
            Ok(entry) => {
                self.send_frame(entry.frame).await?;
                Ok(Some(entry.runs))
            }
            Err(err) => self.error(err.to_string()).await.map(|()| None),
        }
    }

    /// Sends the stored epochs after the last one sent.
    async fn catch_up(&mut self) -> Result<(), SessionEnd> {
        let Some(sub) = self.subscription else {
            return Ok(());
        };
        // Frames not cached yet are read, decoded and deflated: blocking work.
        let hub = self.hub.clone();
        let from = sub.last_sent + 1;
        let frames =
            match tokio::task::spawn_blocking(move || hub.epoch_frames(sub.run_id, from)).await {
                Ok(Ok(frames)) => frames,
                Ok(Err(err)) => return self.error(err.to_string()).await,
                Err(err) => {
                    return self
                        .error(format!("reading the stored epochs failed: {err}"))
                        .await;
                }
            };
        for (epoch, frame) in frames {
            self.send_frame(frame).await?;
            self.subscription = Some(Subscription {
                run_id: sub.run_id,
                last_sent: epoch,
            });
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), SessionEnd> {
        match frame {
            Message::Binary(bytes) => match decode::<ClientMessage>(&bytes) {
                Ok(ClientMessage::Ping { nonce }) => {
                    self.send(&ServerMessage::Pong { nonce }).await
                }
                Ok(ClientMessage::Subscribe { run_id, from_epoch }) => {
                    self.subscribe(run_id, from_epoch).await
                }
                Err(err) => self.error(err.to_string()).await,
            },
            Message::Text(_) => {
                self.error("text frames are not accepted; send binary protocol frames".to_owned())
                    .await
            }
            Message::Close(_) => Err(SessionEnd::ClientClosed),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    async fn subscribe(&mut self, run_id: i64, from_epoch: u32) -> Result<(), SessionEnd> {
        let summary = match self.hub.blocking(move |hub| hub.run(run_id)).await {
            Ok(Some(summary)) => summary,
            Ok(None) => return self.error(format!("there is no run {run_id}")).await,
            Err(err) => return self.error(err.to_string()).await,
        };
        self.send(&ServerMessage::Run(summary)).await?;
        let hub = self.hub.clone();
        match tokio::task::spawn_blocking(move || hub.images_frame(run_id)).await {
            Ok(Ok(Some(frame))) => self.send_frame(frame).await?,
            Ok(Ok(None)) => {}
            Ok(Err(err)) => self.error(err.to_string()).await?,
            Err(err) => {
                self.error(format!("reading the run's images failed: {err}"))
                    .await?;
            }
        }
        if let Some(frame) = self.hub.preparing_frame(run_id) {
            self.send_frame(frame).await?;
        }
        self.subscription = Some(Subscription {
            run_id,
            last_sent: from_epoch.max(1) - 1,
        });
        self.catch_up().await
    }

    async fn on_event(&mut self, event: Result<HubEvent, RecvError>) -> Result<(), SessionEnd> {
        let sub = self.subscription;
        match event {
            Ok(HubEvent::Epoch {
                run_id,
                epoch,
                frame,
            }) => {
                let Some(sub) = sub.filter(|s| s.run_id == run_id) else {
                    return Ok(());
                };
                if epoch <= sub.last_sent {
                    Ok(())
                } else if epoch == sub.last_sent + 1 {
                    self.send_frame(frame).await?;
                    self.subscription = Some(Subscription {
                        run_id,
                        last_sent: epoch,
                    });
                    Ok(())
                } else {
                    self.catch_up().await
                }
            }
            Ok(HubEvent::Progress { run_id, frame, .. }) => {
                if sub.is_some_and(|s| s.run_id == run_id) {
                    self.send_frame(frame).await
                } else {
                    Ok(())
                }
            }
            Ok(HubEvent::RunChanged { run_id }) => {
                let runs = self.send_runs().await?;
                if sub.is_some_and(|s| s.run_id == run_id)
                    && let Some(summary) = runs
                        .as_deref()
                        .and_then(|runs| runs.iter().find(|r| r.run_id == run_id))
                {
                    self.send(&ServerMessage::Run(summary.clone())).await?;
                }
                Ok(())
            }
            // This session fell behind: whatever it missed is in the store.
            Err(RecvError::Lagged(_)) => self.catch_up().await,
            Err(RecvError::Closed) => Ok(()),
        }
    }
}

/// Serves one websocket session until the client leaves.
pub async fn serve_session<S, R, E>(
    sink: S,
    mut stream: R,
    hub: Hub,
    info: ServerInfo,
) -> SessionEnd
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    // Subscribe to events before anything is read from the store, so nothing falls between.
    let mut events = hub.subscribe();
    let mut session = Session {
        sink,
        hub,
        subscription: None,
    };
    let greeting = async {
        session.send(&ServerMessage::Hello(info)).await?;
        session.send_runs().await.map(|_| ())
    };
    if let Err(end) = greeting.await {
        return end;
    }
    let mut events_open = true;
    loop {
        let result = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(frame)) => session.on_frame(frame).await,
                _ => Err(SessionEnd::ClientClosed),
            },
            event = events.recv(), if events_open => {
                if matches!(event, Err(RecvError::Closed)) {
                    events_open = false;
                }
                session.on_event(event).await
            }
        };
        if let Err(end) = result {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actiscope_protocol::PROTOCOL_VERSION;
    use actiscope_store::Store;

    fn info() -> ServerInfo {
        ServerInfo {
            version: "test".into(),
            protocol_version: PROTOCOL_VERSION,
            uptime_secs: 0.0,
            build: "test".into(),
            run_count: 0,
        }
    }

    fn replies(frames: Vec<Message>) -> (SessionEnd, Vec<ServerMessage>) {
        let hub = Hub::new(Store::open_in_memory().expect("store"));
        let mut sent: Vec<Message> = Vec::new();
        let input = futures_util::stream::iter(frames.into_iter().map(Ok::<_, ()>));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let end = runtime.block_on(serve_session(&mut sent, input, hub, info()));
        let decoded = sent
            .into_iter()
            .map(|m| match m {
                Message::Binary(b) => {
                    actiscope_protocol::decode_server_message(&b).expect("server frames decode")
                }
                other => panic!("unexpected frame {other:?}"),
            })
            .collect();
        (end, decoded)
    }

    fn ping(nonce: u64) -> Message {
        Message::Binary(encode(&ClientMessage::Ping { nonce }).unwrap().into())
    }

    #[test]
    fn greets_lists_runs_then_answers_pings_in_order() {
        let (end, out) = replies(vec![ping(7), ping(9)]);
        assert_eq!(end, SessionEnd::ClientClosed);
        assert!(matches!(out[0], ServerMessage::Hello(_)));
        assert_eq!(out[1], ServerMessage::Runs(vec![]));
        assert_eq!(
            out[2..],
            [
                ServerMessage::Pong { nonce: 7 },
                ServerMessage::Pong { nonce: 9 }
            ]
        );
    }

    #[test]
    fn garbage_and_unknown_runs_get_errors_and_the_session_goes_on() {
        let subscribe = encode(&ClientMessage::Subscribe {
            run_id: 99,
            from_epoch: 1,
        })
        .unwrap();
        let (end, out) = replies(vec![
            Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into()),
            Message::Text("hello".into()),
            Message::Binary(subscribe.into()),
            ping(1),
            Message::Close(None),
            ping(2),
        ]);
        assert_eq!(end, SessionEnd::ClientClosed);
        assert_eq!(out.len(), 6, "{out:?}");
        assert!(matches!(out[2], ServerMessage::Error { .. }));
        assert!(matches!(out[3], ServerMessage::Error { .. }));
        match &out[4] {
            ServerMessage::Error { reason } => assert!(reason.contains("99"), "{reason}"),
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(out[5], ServerMessage::Pong { nonce: 1 });
    }
}
