//! Which protocol a listener speaks: the one fact about a front-end that the lower
//! modules (admission, metrics) need, kept here so that they need nothing above them.

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Line,
    Irc,
    Http,
    /// The line protocol over TLS.
    LineTls,
    /// IRC over TLS (port 6697 by convention).
    IrcTls,
    /// The web page and its WebSocket over HTTPS and WSS.
    Https,
}

impl Frontend {
    /// Whether the listener speaks TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Frontend::LineTls | Frontend::IrcTls | Frontend::Https)
    }

    /// The front-end's name in the log.
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Line => "line",
            Frontend::Irc => "irc",
            Frontend::Http => "web",
            Frontend::LineTls => "line-tls",
            Frontend::IrcTls => "irc-tls",
            Frontend::Https => "web-tls",
        }
    }
}
