//! The scrollback: the last lines of the conversation and how far the user has
//! scrolled up from the bottom.

use std::collections::VecDeque;

/// How a line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `! ` lines from the server, and the client's own bad news.
    Error,
    /// `* ` lines from the server.
    Info,
    /// `[room] sender: text`.
    Room,
    /// `[room] * sender action`.
    Action,
    /// `[room] -sender- notice`.
    Notice,
    /// `[dm] sender: text`.
    Direct,
    /// The local echo of what this user sent.
    Own,
    /// A note from the client itself, not from the server.
    Client,
    /// A line in no format the client knows.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub text: String,
}

/// The last `cap` entries, oldest first.
#[derive(Debug)]
pub struct Scrollback {
    entries: VecDeque<Entry>,
    cap: usize,
    /// How many entries the view is scrolled up from the newest; 0 follows new lines.
    offset: usize,
}

impl Scrollback {
    pub fn new(cap: usize) -> Self {
        Scrollback {
            entries: VecDeque::new(),
            cap: cap.max(1),
            offset: 0,
        }
    }

    /// Appends an entry, dropping the oldest beyond the cap. A view scrolled up stays on
    /// the lines it shows rather than drifting as new ones arrive.
    pub fn push(&mut self, kind: Kind, text: impl Into<String>) {
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            kind,
            text: text.into(),
        });
        if self.offset > 0 {
            self.offset = (self.offset + 1).min(self.entries.len() - 1);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn scroll_up(&mut self, by: usize) {
        self.offset = (self.offset + by).min(self.entries.len().saturating_sub(1));
    }

    pub fn scroll_down(&mut self, by: usize) {
        self.offset = self.offset.saturating_sub(by);
    }

    pub fn scroll_to_bottom(&mut self) {
        self.offset = 0;
    }

    /// The entries up to the bottom of the view, newest first; the caller takes as many
    /// as fit.
    pub fn visible(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().rev().skip(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(scrollback: &Scrollback, n: usize) -> Vec<&str> {
        let mut shown: Vec<&str> = scrollback
            .visible()
            .take(n)
            .map(|e| e.text.as_str())
            .collect();
        shown.reverse();
        shown
    }

    #[test]
    fn keeps_only_the_newest_entries() {
        let mut scrollback = Scrollback::new(3);
        for i in 0..5 {
            scrollback.push(Kind::Info, i.to_string());
        }
        assert_eq!(scrollback.len(), 3);
        assert_eq!(texts(&scrollback, 10), ["2", "3", "4"]);
    }

    #[test]
    fn scrolled_up_view_stays_put_and_follows_at_the_bottom() {
        let mut scrollback = Scrollback::new(100);
        for i in 0..10 {
            scrollback.push(Kind::Room, i.to_string());
        }
        assert_eq!(texts(&scrollback, 2), ["8", "9"]);
        scrollback.scroll_up(3);
        assert_eq!(texts(&scrollback, 2), ["5", "6"]);
        scrollback.push(Kind::Room, "10");
        assert_eq!(texts(&scrollback, 2), ["5", "6"], "the view does not drift");
        scrollback.scroll_down(100);
        assert_eq!(texts(&scrollback, 2), ["9", "10"]);
        scrollback.push(Kind::Room, "11");
        assert_eq!(texts(&scrollback, 2), ["10", "11"], "the bottom follows");
    }

    #[test]
    fn scrolling_is_clamped() {
        let mut scrollback = Scrollback::new(3);
        scrollback.scroll_up(5);
        assert_eq!(scrollback.offset(), 0);
        for i in 0..5 {
            scrollback.push(Kind::Info, i.to_string());
        }
        scrollback.scroll_up(50);
        assert_eq!(scrollback.offset(), 2);
        assert_eq!(texts(&scrollback, 5), ["2"]);
        scrollback.push(Kind::Info, "5");
        assert_eq!(scrollback.offset(), 2, "eviction keeps the offset in range");
        scrollback.scroll_to_bottom();
        assert_eq!(texts(&scrollback, 1), ["5"]);
    }
}
