//! A connection after a WebSocket upgrade on the input's `ws_path`: reads frames, runs
//! each data message through the pipeline with the upgrade request's metadata, and sends
//! back every stored response message as one frame, until either side closes.
//!
//! Messages of a connection are taken one at a time: the next frame is not read until
//! the previous message is answered, so answers keep their order and a slow pipeline
//! holds back only this connection (its socket buffer fills; the shard runs on).

use std::time::Duration;

use bumpalo::Bump;

use crate::http::websocket::{self as ws, Event, Reader};
use crate::message::Meta;
use crate::pipeline::Pipeline;
use crate::transaction::{Outcome, ResponseStore};

use super::{Connection, Read};

impl Connection {
    /// Serves the upgraded connection; `meta` is the upgrade request's metadata, which
    /// every message carries (the 101 is already in the write buffer). Returns when the
    /// connection is finished.
    pub(super) async fn websocket(&mut self, pipeline: &Pipeline, meta: &Meta<'_>) {
        let shard = self.shard.clone();
        let slot = shard.closing.slot();
        let idle_timeout = self.routes.limits.idle_timeout;
        // A message may be as large as a request body.
        let mut reader = Reader::new(self.routes.limits.max_body_bytes);
        // One message's arena, reset for each (`meta` is in the upgrade's arena).
        let mut arena = Bump::new();
        let welcome = pipeline.input.ws_welcome_message();
        if !welcome.is_empty() {
            ws::write_frame(&mut self.wbuf, ws::OP_TEXT, welcome.as_bytes());
        }
        loop {
            let (start, end) = (self.rbuf.start, self.rbuf.end);
            let (used, message) = match reader.next(&mut self.rbuf.buf[start..end]) {
                Err(v) => {
                    ws::write_close(&mut self.wbuf, v.code, v.reason);
                    return self.finish().await;
                }
                Ok(None) => {
                    if self.flush().await.is_err() {
                        return;
                    }
                    let read = if shard.closing.is_closed() {
                        Read::Closing
                    } else {
                        self.read_idle(idle_timeout, &slot, || {
                            arena = Bump::new();
                            reader.trim();
                        })
                        .await
                    };
                    match read {
                        Read::Data => continue,
                        Read::Closing => {
                            ws::write_close(&mut self.wbuf, ws::CLOSE_GOING_AWAY, "Server closing")
                        }
                        Read::TimedOut => {
                            ws::write_close(&mut self.wbuf, ws::CLOSE_GOING_AWAY, "idle timeout")
                        }
                        Read::Eof | Read::Failed => return,
                    }
                    return self.finish().await;
                }
                Ok(Some((used, event))) => match event {
                    Event::Message { text, payload } => {
                        // The previous message is answered: its arena memory is free.
                        arena.reset();
                        (
                            used,
                            Some((text, pipeline.input.ws_batch(&arena, meta, payload))),
                        )
                    }
                    Event::Ping(payload) => {
                        ws::write_frame(&mut self.wbuf, ws::OP_PONG, payload);
                        (used, None)
                    }
                    Event::Pong | Event::Fragment => (used, None),
                    Event::Close(code) => {
                        // Echo the peer's code (§5.5.1), then close the TCP side first.
                        match code {
                            Some(code) => ws::write_close(&mut self.wbuf, code, ""),
                            None => ws::write_frame(&mut self.wbuf, ws::OP_CLOSE, b""),
                        }
                        self.rbuf.consume(used);
                        return self.finish().await;
                    }
                },
            };
            self.rbuf.consume(used);
            let Some((text, batch)) = message else {
                continue;
            };
            let wbuf = &mut self.wbuf;
            let open = pipeline
                .process(&shard.txns, &arena, batch, |outcome, store| {
                    answer(outcome, store, text, wbuf)
                })
                .await;
            self.rbuf.shrink();
            if !open {
                return self.finish().await;
            }
        }
    }

    /// Sends what is buffered (a close frame last) and closes the TCP connection.
    async fn finish(&mut self) {
        self.close().await;
        // Give the peer a moment to read the close before the socket goes away.
        let _ = self.read(Duration::from_millis(100)).await;
    }
}

/// Writes a message's answer: one frame per stored response message, text when the
/// message was text and the response is UTF-8. A failed message closes the connection
/// with 1011 and the error, so a client never takes silence for delivery. Returns
/// whether the connection stays open.
fn answer(outcome: Outcome, store: &ResponseStore, text: bool, out: &mut Vec<u8>) -> bool {
    match outcome {
        Outcome::Acked => {
            for m in store.messages() {
                let as_text = text && std::str::from_utf8(&m.payload).is_ok();
                let opcode = if as_text { ws::OP_TEXT } else { ws::OP_BINARY };
                ws::write_frame(out, opcode, &m.payload);
            }
            true
        }
        Outcome::Nacked(error) => {
            ws::write_close(out, ws::CLOSE_INTERNAL_ERROR, &error);
            false
        }
        Outcome::TimedOut => {
            ws::write_close(out, ws::CLOSE_INTERNAL_ERROR, "Request timed out");
            false
        }
    }
}
