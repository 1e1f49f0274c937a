//! The bytes of a peer datagram: the text hello that offers the protocol, and the binary
//! packet that carries acknowledgements and chunks of the message stream.
//!
//! Every decoder here takes any byte slice and returns an error rather than panicking;
//! nothing is allocated in proportion to a length field.

/// The first bytes of every binary packet. `0xC0` can never appear in UTF-8, so no
/// plain-text datagram starts like this, and a UTF-8 decoder rejects the packet at once.
pub const MAGIC: [u8; 4] = [0xC0, 0xFA, b'c', b'p'];
/// The protocol version in each packet header and in the hello prefix.
pub const VERSION: u8 = 1;
/// The one kind of binary packet in version 1; a byte is kept for later kinds.
const KIND_PACKET: u8 = 1;
/// Magic, version, kind, session tag and packet number.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 8 + 8;

/// The hello is text, so that a tutorial script that receives it prints a line instead of
/// failing to decode it. The leading U+0001 is something no one types at a prompt, which
/// keeps typed text from ever being read as a hello.
pub const HELLO_PREFIX: &[u8] = b"\x01confab-peer/1 hello ";
/// Bytes in a session nonce, one per process, chosen at random.
pub const NONCE_LEN: usize = 16;
/// Bytes of the truncated HMAC that authenticates a hello when the chat has a secret.
pub const MAC_LEN: usize = 16;
/// The hello's fields before its MAC: nonce, flags, echoed nonce.
const HELLO_SIGNED_LEN: usize = NONCE_LEN + 1 + NONCE_LEN;
const HELLO_LEN: usize = HELLO_SIGNED_LEN + MAC_LEN;
const HELLO_SECRET: u8 = 1;
const HELLO_ECHO: u8 = 2;

/// The selective-acknowledgement bitmap covers one send window: bit `i` stands for the
/// sequence number `ack + 1 + i`.
pub const SACK_BYTES: usize = 32;
/// Flags, cumulative ack, echoed packet number and the SACK length byte that start
/// every packet body.
pub const BODY_FIXED_LEN: usize = 1 + 8 + 8 + 1;
/// Sequence number, kind, fragment index, fragment count and data length.
pub const FRAGMENT_HEADER_LEN: usize = 8 + 1 + 2 + 2 + 2;
/// Sequence number and kind.
pub const BYE_LEN: usize = 8 + 1;
/// The largest datagram confab sends, small enough to cross any path without IP
/// fragmentation (IPv6 guarantees 1280 bytes).
pub const MAX_DATAGRAM: usize = 1200;

const FLAG_PING: u8 = 1;
const CHUNK_FRAGMENT: u8 = 0;
const CHUNK_BYE: u8 = 1;

/// A session nonce.
pub type Nonce = [u8; NONCE_LEN];

/// Why a datagram that claimed to be confab's could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a packet header.
    Short,
    /// A packet of a version this build does not speak.
    Version(u8),
    /// A packet kind this version does not know.
    Kind(u8),
    /// Starts like a hello but is not one.
    Hello,
    /// The packet body does not parse.
    Body,
}

/// What a received datagram is, decided by its first bytes alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Hello(Hello),
    /// A binary packet. `header_bytes` is authenticated as associated data and `body` is
    /// still sealed when the chat has a secret.
    Packet {
        header: Header,
        header_bytes: &'a [u8],
        body: &'a [u8],
    },
    /// Anything else: the tutorial's protocol, one line of text per datagram.
    Plain(&'a [u8]),
    Malformed(Malformed),
}

/// Sorts a datagram into hello, packet, plain text or malformed.
pub fn classify(datagram: &[u8]) -> Datagram<'_> {
    if datagram.starts_with(&MAGIC) {
        if datagram.len() < HEADER_LEN {
            return Datagram::Malformed(Malformed::Short);
        }
        let (head, body) = datagram.split_at(HEADER_LEN);
        return match Header::decode(head) {
            Ok(header) => Datagram::Packet {
                header,
                header_bytes: head,
                body,
            },
            Err(e) => Datagram::Malformed(e),
        };
    }
    if let Some(hex) = datagram.strip_prefix(HELLO_PREFIX) {
        return match Hello::decode_hex(hex) {
            Some(hello) => Datagram::Hello(hello),
            None => Datagram::Malformed(Malformed::Hello),
        };
    }
    Datagram::Plain(datagram)
}

/// The handshake message. Each side sends its nonce, and once it has heard the friend's,
/// echoes it back; a side whose nonce has been echoed knows the friend heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub nonce: Nonce,
    /// Whether the sender has a secret; the MAC is meaningful only then.
    pub secret: bool,
    /// The friend's nonce, once the sender has heard it.
    pub echo: Option<Nonce>,
    /// HMAC over [`Hello::signed_part`] under a key derived from the secret; zeros when
    /// there is no secret.
    pub mac: [u8; MAC_LEN],
}

impl Hello {
    /// The bytes the MAC covers: everything but the MAC itself.
    pub fn signed_part(&self) -> [u8; HELLO_SIGNED_LEN] {
        let mut out = [0; HELLO_SIGNED_LEN];
        out[..NONCE_LEN].copy_from_slice(&self.nonce);
        let mut flags = 0;
        if self.secret {
            flags |= HELLO_SECRET;
        }
        if let Some(echo) = &self.echo {
            flags |= HELLO_ECHO;
            out[NONCE_LEN + 1..].copy_from_slice(echo);
        }
        out[NONCE_LEN] = flags;
        out
    }

    /// The whole datagram: the prefix and the fields in lowercase hex.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HELLO_PREFIX.len() + 2 * HELLO_LEN);
        out.extend_from_slice(HELLO_PREFIX);
        for byte in self.signed_part().iter().chain(&self.mac) {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xF)]);
        }
        out
    }

    fn decode_hex(hex: &[u8]) -> Option<Hello> {
        if hex.len() != 2 * HELLO_LEN {
            return None;
        }
        let mut raw = [0u8; HELLO_LEN];
        for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        let flags = raw[NONCE_LEN];
        if flags & !(HELLO_SECRET | HELLO_ECHO) != 0 {
            return None;
        }
        let nonce: Nonce = raw[..NONCE_LEN].try_into().ok()?;
        let echo: Nonce = raw[NONCE_LEN + 1..HELLO_SIGNED_LEN].try_into().ok()?;
        let mac: [u8; MAC_LEN] = raw[HELLO_SIGNED_LEN..].try_into().ok()?;
        Some(Hello {
            nonce,
            secret: flags & HELLO_SECRET != 0,
            echo: (flags & HELLO_ECHO != 0).then_some(echo),
            mac,
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The clear header of a binary packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Names the pair of nonces the packet belongs to, so that packets from a friend's
    /// earlier run are recognised as stale rather than misread.
    pub session: u64,
    /// Counts the sender's packets in this session; never repeats, so it is the AEAD
    /// nonce and the replay-window index.
    pub pn: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = KIND_PACKET;
        out[6..14].copy_from_slice(&self.session.to_be_bytes());
        out[14..22].copy_from_slice(&self.pn.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Header, Malformed> {
        let mut r = Reader(bytes);
        let _magic = r.take(MAGIC.len())?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Malformed::Version(version));
        }
        let kind = r.u8()?;
        if kind != KIND_PACKET {
            return Err(Malformed::Kind(kind));
        }
        Ok(Header {
            session: r.u64()?,
            pn: r.u64()?,
        })
    }
}

/// A packet body once opened: acknowledgement state and the chunks it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body<'a> {
    /// The sender asks for an acknowledgement now; keepalives set it.
    pub ping: bool,
    /// Every sequence number below this has arrived.
    pub ack: u64,
    /// The largest packet number received from the other side, plus one; zero when
    /// none has arrived. Echoing it gives an unambiguous round-trip sample even for
    /// retransmitted chunks, which chunk acknowledgements alone cannot (Karn's problem).
    pub echo: u64,
    /// Which sequence numbers above `ack` have arrived (see [`SACK_BYTES`]).
    pub sack: &'a [u8],
    pub chunks: Vec<Chunk<'a>>,
}

/// One element of the ordered stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub seq: u64,
    pub payload: Payload<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Part `index` of `count` of one message.
    Fragment {
        index: u16,
        count: u16,
        data: &'a [u8],
    },
    /// The sender has nothing more to say and is leaving.
    Bye,
}

impl<'a> Body<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Body<'a>, Malformed> {
        let mut r = Reader(bytes);
        let flags = r.u8()?;
        if flags & !FLAG_PING != 0 {
            return Err(Malformed::Body);
        }
        let ack = r.u64()?;
        let echo = r.u64()?;
        let sack_len = usize::from(r.u8()?);
        if sack_len > SACK_BYTES {
            return Err(Malformed::Body);
        }
        let sack = r.take(sack_len)?;
        let mut chunks = Vec::new();
        while !r.0.is_empty() {
            let seq = r.u64()?;
            let payload = match r.u8()? {
                CHUNK_FRAGMENT => {
                    let index = r.u16()?;
                    let count = r.u16()?;
                    let len = usize::from(r.u16()?);
                    if index >= count {
                        return Err(Malformed::Body);
                    }
                    Payload::Fragment {
                        index,
                        count,
                        data: r.take(len)?,
                    }
                }
                CHUNK_BYE => Payload::Bye,
                _ => return Err(Malformed::Body),
            };
            chunks.push(Chunk { seq, payload });
        }
        Ok(Body {
            ping: flags & FLAG_PING != 0,
            ack,
            echo,
            sack,
            chunks,
        })
    }
}

/// Builds a packet body chunk by chunk within a size budget.
#[derive(Debug)]
pub struct BodyWriter {
    buf: Vec<u8>,
    limit: usize,
    chunks: usize,
}

impl BodyWriter {
    /// Starts a body of at most `limit` bytes. The acknowledgement part always fits:
    /// `limit` must be at least `BODY_FIXED_LEN + SACK_BYTES`.
    pub fn new(ping: bool, ack: u64, echo: u64, sack: &[u8], limit: usize) -> BodyWriter {
        let sack = &sack[..sack.len().min(SACK_BYTES)];
        let mut buf = Vec::with_capacity(limit);
        buf.push(if ping { FLAG_PING } else { 0 });
        buf.extend_from_slice(&ack.to_be_bytes());
        buf.extend_from_slice(&echo.to_be_bytes());
        // The length is at most SACK_BYTES, so it fits a byte.
        buf.push(sack.len() as u8);
        buf.extend_from_slice(sack);
        BodyWriter {
            buf,
            limit,
            chunks: 0,
        }
    }

    /// Bytes of fragment data that would still fit after a fragment header.
    pub fn fragment_room(&self) -> usize {
        self.limit
            .saturating_sub(self.buf.len())
            .saturating_sub(FRAGMENT_HEADER_LEN)
    }

    /// Adds a fragment if it fits; `data` must be at most `u16::MAX` bytes.
    pub fn push_fragment(&mut self, seq: u64, index: u16, count: u16, data: &[u8]) -> bool {
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        if data.len() > self.fragment_room() || self.limit < self.buf.len() + FRAGMENT_HEADER_LEN {
            return false;
        }
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.push(CHUNK_FRAGMENT);
        self.buf.extend_from_slice(&index.to_be_bytes());
        self.buf.extend_from_slice(&count.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(data);
        self.chunks += 1;
        true
    }

    /// Adds a bye if it fits.
    pub fn push_bye(&mut self, seq: u64) -> bool {
        if self.buf.len() + BYE_LEN > self.limit {
            return false;
        }
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.push(CHUNK_BYE);
        self.chunks += 1;
        true
    }

    /// How many chunks were added.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A cursor over untrusted bytes whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed::Body);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.take(N)?.try_into().map_err(|_| Malformed::Body)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}
