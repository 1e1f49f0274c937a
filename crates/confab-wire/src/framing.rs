//! Splitting a byte stream into lines with a hard length limit, shared by every
//! line-oriented front-end (the line protocol now, IRC next).

/// One result of feeding bytes to a [`LineDecoder`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` or a trailing `\r`. Not yet checked for UTF-8.
    Line(&'a [u8]),
    /// A line went past the limit. It is reported once, as soon as the limit is
    /// crossed, and the rest of it up to the next `\n` is thrown away.
    TooLong,
}

/// Turns a stream of byte chunks into lines of at most `max` bytes.
///
/// A line that arrives whole inside one chunk is handed out without copying; only the
/// unfinished tail of a chunk is kept, so an idle connection holds no buffer at all.
#[derive(Debug)]
pub struct LineDecoder {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    max: usize,
    /// Set after [`Frame::TooLong`] until the offending line's `\n` has gone by.
    discarding: bool,
    /// `partial` holds a line already handed out by [`LineDecoder::next_frame`]; it is
    /// cleared on the next call, once the caller is done with the line.
    handed_out: bool,
}

/// Above this capacity the partial-line buffer is freed once it empties, so that one
/// long line does not pin memory for the rest of the connection.
const KEEP_CAPACITY: usize = 1024;

impl LineDecoder {
    pub fn new(max: usize) -> Self {
        LineDecoder {
            partial: Vec::new(),
            max,
            discarding: false,
            handed_out: false,
        }
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        if self.handed_out {
            0
        } else {
            self.partial.len()
        }
    }

    /// Whether a line has started and not ended: bytes are held for it, or an
    /// overlong line is being thrown away up to its `\n`.
    pub fn is_mid_line(&self) -> bool {
        self.pending() > 0 || self.discarding
    }

    /// Feeds `data` and calls `on_frame` for every line it completes or overflows.
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while let Some(frame) = self.next_frame(&mut data) {
            on_frame(frame);
        }
    }

    /// Takes the next frame from the front of `data`, advancing `data` past what it
    /// used. `None` means `data` is used up (any unfinished line is kept for the next
    /// chunk). A caller may stop between frames and feed the rest of `data` later,
    /// which is how a connection holds back input it has no budget for yet.
    pub fn next_frame<'s, 'd: 's>(&'s mut self, data: &mut &'d [u8]) -> Option<Frame<'s>> {
        if self.handed_out {
            self.handed_out = false;
            self.reset();
        }
        loop {
            let chunk: &'d [u8] = data;
            if chunk.is_empty() {
                return None;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.discarding = false;
                        *data = &chunk[i + 1..];
                        continue;
                    }
                    None => {
                        *data = &[];
                        return None;
                    }
                }
            }
            let Some(i) = newline else {
                *data = &[];
                if self.partial.len() + chunk.len() > self.max + 1 {
                    // `max + 1` leaves room for a trailing `\r` that will be stripped.
                    self.reset();
                    self.discarding = true;
                    return Some(Frame::TooLong);
                }
                self.partial.extend_from_slice(chunk);
                return None;
            };
            let head = &chunk[..i];
            *data = &chunk[i + 1..];
            let line: &[u8] = if self.partial.is_empty() {
                head
            } else {
                self.partial.extend_from_slice(head);
                self.handed_out = true;
                &self.partial
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.max {
                return Some(Frame::TooLong);
            }
            return Some(Frame::Line(line));
        }
    }

    fn reset(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Result<String, ()>> {
        let mut decoder = LineDecoder::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, |frame| {
                out.push(match frame {
                    Frame::Line(l) => Ok(String::from_utf8_lossy(l).into_owned()),
                    Frame::TooLong => Err(()),
                })
            });
        }
        out
    }

    #[test]
    fn splits_on_newlines_and_strips_cr() {
        assert_eq!(
            frames(10, &[b"a\r\nbb\n\nc"]),
            [Ok("a".into()), Ok("bb".into()), Ok("".into())]
        );
    }

    #[test]
    fn joins_lines_split_across_chunks() {
        assert_eq!(
            frames(10, &[b"he", b"ll", b"o\r", b"\nx\n"]),
            [Ok("hello".into()), Ok("x".into())]
        );
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_the_next_line_survives() {
        assert_eq!(
            frames(4, &[b"abcdefgh", b"ijk", b"lmn\nok\n"]),
            [Err(()), Ok("ok".into())]
        );
        assert_eq!(frames(4, &[b"abcde\nok\n"]), [Err(()), Ok("ok".into())]);
        assert_eq!(frames(4, &[b"abcd\r\n"]), [Ok("abcd".into())]);
    }

    #[test]
    fn frames_can_be_taken_one_at_a_time_and_the_rest_fed_later() {
        let mut decoder = LineDecoder::new(10);
        let mut data: &[u8] = b"one\ntwo\nthr";
        assert_eq!(decoder.next_frame(&mut data), Some(Frame::Line(b"one")));
        // Stop here: the rest is fed again later, unchanged.
        let rest = data.to_vec();
        let mut data: &[u8] = &rest;
        assert_eq!(decoder.next_frame(&mut data), Some(Frame::Line(b"two")));
        assert_eq!(decoder.next_frame(&mut data), None);
        assert!(decoder.is_mid_line());
        let mut data: &[u8] = b"ee\n";
        assert_eq!(decoder.next_frame(&mut data), Some(Frame::Line(b"three")));
        assert_eq!(decoder.next_frame(&mut data), None);
        assert!(!decoder.is_mid_line());
    }

    #[test]
    fn discarding_an_overlong_line_counts_as_mid_line() {
        let mut decoder = LineDecoder::new(4);
        let mut data: &[u8] = b"abcdefgh";
        assert_eq!(decoder.next_frame(&mut data), Some(Frame::TooLong));
        assert!(decoder.is_mid_line());
        decoder.feed(b"\n", |_| {});
        assert!(!decoder.is_mid_line());
    }

    #[test]
    fn a_lone_cr_is_part_of_the_line() {
        assert_eq!(frames(10, &[b"a\rb\n"]), [Ok("a\rb".into())]);
    }
}
