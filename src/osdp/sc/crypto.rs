//! The AES-128 arithmetic of Secure Channel (OSDP v2.2 Annex D): session key derivation, the two
//! cryptograms, the initial R-MAC, the chained MAC and DATA encryption. No state; the channels own it.
//!
//! Every block operation is RustCrypto's `aes` (single blocks) or `cbc` (chains); nothing here is a
//! hand-written cipher. Keys are [`Key16`], zeroized on drop and never printed.

use aes::Aes128;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

type CbcEnc = cbc::Encryptor<Aes128>;
type CbcDec = cbc::Decryptor<Aes128>;

/// AES block size.
pub(crate) const BLOCK: usize = 16;

/// 16 bytes of key material: zeroized on drop, `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key16([u8; BLOCK]);

impl Key16 {
    pub const fn new(bytes: [u8; BLOCK]) -> Self {
        Key16(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; BLOCK] {
        &self.0
    }
}

impl std::fmt::Debug for Key16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key16(redacted)")
    }
}

/// S-ENC, S-MAC1 and S-MAC2 of one session.
#[derive(Clone, Debug, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    pub(crate) enc: Key16,
    pub(crate) mac1: Key16,
    pub(crate) mac2: Key16,
}

/// One AES-128 block encryption (ECB of a single block).
pub(crate) fn ecb(key: &Key16, block: &[u8; BLOCK]) -> [u8; BLOCK] {
    let cipher = Aes128::new(key.bytes().into());
    let mut b = aes::Block::from(*block);
    cipher.encrypt_block(&mut b);
    b.into()
}

impl SessionKeys {
    /// Derive the session keys from the base key and the CP's random number: ECB(base, `01 t A0..A5 00…`)
    /// with t = 0x82 (S-ENC), 0x01 (S-MAC1), 0x02 (S-MAC2).
    pub(crate) fn derive(base: &Key16, rnd_a: &[u8; 8]) -> Self {
        let key = |t: u8| {
            let mut block = [0u8; BLOCK];
            block[0] = 0x01;
            block[1] = t;
            block[2..8].copy_from_slice(&rnd_a[..6]);
            let out = Key16(ecb(base, &block));
            block.zeroize();
            out
        };
        SessionKeys {
            enc: key(0x82),
            mac1: key(0x01),
            mac2: key(0x02),
        }
    }

    /// The PD's proof of the key: ECB(S-ENC, RND.A ‖ RND.B).
    pub(crate) fn client_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> [u8; BLOCK] {
        ecb(&self.enc, &concat(rnd_a, rnd_b))
    }

    /// The CP's proof of the key: ECB(S-ENC, RND.B ‖ RND.A).
    pub(crate) fn server_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> [u8; BLOCK] {
        ecb(&self.enc, &concat(rnd_b, rnd_a))
    }

    /// The MAC chain's starting point: ECB(S-MAC2, ECB(S-MAC1, server cryptogram)).
    pub(crate) fn initial_rmac(&self, server_cryptogram: &[u8; BLOCK]) -> [u8; BLOCK] {
        ecb(&self.mac2, &ecb(&self.mac1, server_cryptogram))
    }

    /// The 16-byte MAC of `input` (SOM through the end of DATA, LEN final): pad with 0x80 and zeros to a
    /// block multiple when needed, CBC with S-MAC1 over all blocks but the last, the last with S-MAC2.
    pub(crate) fn mac(&self, iv: &[u8; BLOCK], input: &[u8]) -> [u8; BLOCK] {
        let mut buf = input.to_vec();
        if buf.is_empty() || !buf.len().is_multiple_of(BLOCK) {
            pad(&mut buf);
        }
        let split = buf.len() - BLOCK;
        let mut chain = *iv;
        if split > 0 {
            let head = &mut buf[..split];
            // NoPadding over a block multiple cannot fail; a failure would only mean a wrong length.
            if CbcEnc::new(self.mac1.bytes().into(), (&chain).into())
                .encrypt_padded_mut::<NoPadding>(head, split)
                .is_ok()
            {
                chain.copy_from_slice(&head[split - BLOCK..]);
            }
        }
        let mut last = [0u8; BLOCK];
        last.copy_from_slice(&buf[split..]);
        for (l, c) in last.iter_mut().zip(chain) {
            *l ^= c;
        }
        ecb(&self.mac2, &last)
    }

    /// Encrypt command/reply DATA: append 0x80 and zeros to a block multiple (always at least the 0x80),
    /// AES-128-CBC with S-ENC and `iv`.
    pub(crate) fn encrypt(&self, iv: &[u8; BLOCK], data: &[u8]) -> Vec<u8> {
        let mut buf = data.to_vec();
        pad(&mut buf);
        let len = buf.len();
        let _ = CbcEnc::new(self.enc.bytes().into(), iv.into()).encrypt_padded_mut::<NoPadding>(&mut buf, len);
        buf
    }

    /// Decrypt DATA and strip the padding; `None` when the length is not a block multiple or the padding
    /// is not 0x80 followed by zeros.
    pub(crate) fn decrypt(&self, iv: &[u8; BLOCK], data: &[u8]) -> Option<Vec<u8>> {
        if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
            return None;
        }
        let mut buf = data.to_vec();
        CbcDec::new(self.enc.bytes().into(), iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .ok()?;
        let end = buf.iter().rposition(|b| *b != 0)?;
        if buf[end] != 0x80 || buf.len() - end > BLOCK {
            return None;
        }
        buf.truncate(end);
        Some(buf)
    }
}

/// The DATA size after encryption padding: the next multiple of 16 strictly above `len`.
pub const fn encrypted_len(len: usize) -> usize {
    (len / BLOCK + 1) * BLOCK
}

fn pad(buf: &mut Vec<u8>) {
    buf.push(0x80);
    while !buf.len().is_multiple_of(BLOCK) {
        buf.push(0);
    }
}

fn concat(a: &[u8; 8], b: &[u8; 8]) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    out[..8].copy_from_slice(a);
    out[8..].copy_from_slice(b);
    out
}

/// Bitwise NOT of a MAC: the DATA encryption IV is the NOT of the last MAC received from the other side.
pub(crate) fn not(mac: &[u8; BLOCK]) -> [u8; BLOCK] {
    mac.map(|b| !b)
}
