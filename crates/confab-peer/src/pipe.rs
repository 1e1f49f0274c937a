//! The pipe front-end: each line of input is a message, each message from the friend is
//! one line of output, and notices go to a third stream (stderr for the binary).

use confab_wire::framing::{Frame, LineDecoder};
use confab_wire::peer::MAX_MESSAGE;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chat::{Input, Show, ShowTx, UserRx, SHOW_QUEUE, USER_QUEUE};

/// The running front-end's tasks.
pub(crate) struct Front {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Front {
    /// Stops reading input and waits until everything shown is written and flushed.
    pub(crate) async fn finish(self) {
        self.reader.abort();
        let _ = self.reader.await;
        let _ = self.writer.await;
    }
}

/// Starts reading `input` and writing to `output` and `notices`.
pub(crate) fn start<R, W, N>(input: R, output: W, notices: N) -> (UserRx, ShowTx, Front)
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    N: AsyncWrite + Unpin + Send + 'static,
{
    let (user_tx, user_rx) = mpsc::channel(USER_QUEUE);
    let (show_tx, show_rx) = mpsc::channel(SHOW_QUEUE);
    let reader = tokio::spawn(read_lines(input, user_tx, show_tx.clone()));
    let writer = tokio::spawn(write_shows(show_rx, output, notices));
    (user_rx, show_tx, Front { reader, writer })
}

async fn read_lines<R>(mut input: R, user: mpsc::Sender<Input>, show: ShowTx)
where
    R: AsyncBufRead + Unpin,
{
    let mut decoder = LineDecoder::new(MAX_MESSAGE);
    let mut lines = Vec::new();
    let mut too_long = 0usize;
    loop {
        let chunk = match input.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) => {
                let _ = show
                    .send(Show::Notice(format!("reading input failed: {e}")))
                    .await;
                break;
            }
        };
        let eof = chunk.is_empty();
        let mut collect = |frame: Frame<'_>| match frame {
            Frame::Line(line) => lines.push(String::from_utf8_lossy(line).into_owned()),
            Frame::TooLong => too_long += 1,
        };
        if eof {
            // A last line without its newline is still a line.
            if decoder.pending() > 0 {
                decoder.feed(b"\n", &mut collect);
            }
        } else {
            decoder.feed(chunk, &mut collect);
            let n = chunk.len();
            input.consume(n);
        }
        for _ in 0..std::mem::take(&mut too_long) {
            let notice = format!("a line longer than {MAX_MESSAGE} bytes was not sent");
            let _ = show.send(Show::Notice(notice)).await;
        }
        for line in lines.drain(..) {
            if user.send(Input::Line(line)).await.is_err() {
                return;
            }
        }
        if eof {
            break;
        }
    }
    let _ = user.send(Input::Leave).await;
}

async fn write_shows<W, N>(mut shows: mpsc::Receiver<Show>, mut output: W, mut notices: N)
where
    W: AsyncWrite + Unpin,
    N: AsyncWrite + Unpin,
{
    // After a write error (a closed pipe) nothing more is written, but the channel is
    // still drained so that the chat is never held up by its audience.
    let mut output_ok = true;
    let mut notices_ok = true;
    while let Some(show) = shows.recv().await {
        match show {
            Show::Incoming(text) if output_ok => {
                let mut line = text.into_bytes();
                line.push(b'\n');
                output_ok = output.write_all(&line).await.is_ok();
            }
            Show::Notice(text) if notices_ok => {
                let line = format!("confab peer: {text}\n");
                notices_ok = notices.write_all(line.as_bytes()).await.is_ok()
                    && notices.flush().await.is_ok();
            }
            _ => {}
        }
        // Flushing only when nothing else waits batches a burst into few writes.
        if shows.is_empty() && output_ok {
            output_ok = output.flush().await.is_ok();
        }
    }
    if output_ok {
        let _ = output.shutdown().await;
    }
    if notices_ok {
        let _ = notices.shutdown().await;
    }
}
