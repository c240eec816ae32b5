//! SHA-256 of the photos read, for the manifest (SPEC §5), two photos at a
//! time.
//!
//! Every input's bytes are hashed, which is a few per cent of a batch's CPU
//! time. A single SHA-256 is a chain of rounds, each waiting for the one
//! before, so one hash leaves the CPU's SHA unit idle most of the time; two
//! independent hashes run round for round side by side fill those gaps. On
//! a Zen 3 core one hash runs at about 1.5 GB/s (the sha2 crate, the same
//! as `openssl speed`) and two side by side at about 2.1 GB/s together.
//!
//! Our kernel only compresses whole blocks while both lanes hold a photo;
//! the padding, a photo left alone at the end and any CPU without SHA
//! extensions go to the sha2 crate, and the tests hold every result to it.

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

/// The hash of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hashes photos two at a time. [`Lanes::feed`] puts a photo in a free lane
/// and, once both are taken, runs the two side by side until one of them is
/// through and hands that one back with its hash, while the other keeps its
/// place for the next photo. So both lanes stay busy together whatever the
/// photos' sizes, and a photo waits for at most one more to be read.
///
/// `T` is whatever the caller wants back with the photo (its path).
pub struct Lanes<T> {
    lanes: [Option<Lane<T>>; 2],
}

/// A photo with its hash in lowercase hex, and what came with it.
pub type Hashed<T> = (T, Vec<u8>, String);

struct Lane<T> {
    tag: T,
    bytes: Vec<u8>,
    state: [u32; 8],
    /// Bytes compressed into `state` so far, a multiple of 64.
    done: usize,
}

impl<T> Lane<T> {
    fn whole_blocks_left(&self) -> usize {
        (self.bytes.len() - self.done) / 64
    }

    /// The remaining blocks and the padding, one lane alone.
    fn finish(self) -> Hashed<T> {
        let hash = finish(self.state, &self.bytes, self.done);
        (self.tag, self.bytes, hash)
    }
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            lanes: [None, None],
        }
    }
}

impl<T> Lanes<T> {
    /// Takes a photo; once both lanes hold one, gives back the first of
    /// them to be hashed.
    pub fn feed(&mut self, tag: T, bytes: Vec<u8>) -> Option<Hashed<T>> {
        let lane = Lane {
            tag,
            bytes,
            state: INITIAL,
            done: 0,
        };
        match &mut self.lanes {
            [free @ None, _] | [_, free @ None] => *free = Some(lane),
            // `feed` never leaves both lanes taken.
            [Some(_), Some(_)] => return Some(lane.finish()),
        }
        match &self.lanes {
            [Some(_), Some(_)] => self.hash_one_through(),
            _ => None,
        }
    }

    /// A photo still in a lane, hashed; `None` once both are empty.
    pub fn drain(&mut self) -> Option<Hashed<T>> {
        self.hash_one_through()
    }

    /// Runs the lanes side by side until one is through, and finishes it.
    fn hash_one_through(&mut self) -> Option<Hashed<T>> {
        #[cfg(target_arch = "x86_64")]
        if let [Some(a), Some(b)] = &mut self.lanes
            && std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
        {
            let blocks = a.whole_blocks_left().min(b.whole_blocks_left());
            let (from_a, from_b) = (a.done, b.done);
            let mut states = [a.state, b.state];
            // SAFETY: the CPU has just been found to have SHA, SSE4.1 and
            // SSSE3.
            unsafe {
                shani::compress_pair(
                    &mut states,
                    &a.bytes[from_a..from_a + 64 * blocks],
                    &b.bytes[from_b..from_b + 64 * blocks],
                );
            }
            [a.state, b.state] = states;
            a.done += 64 * blocks;
            b.done += 64 * blocks;
        }
        // The lane with fewer whole blocks left is through (or, without the
        // SHA extensions, is finished alone).
        let through = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|l| (l.whole_blocks_left(), i)))
            .min()?
            .1;
        self.lanes[through].take().map(Lane::finish)
    }
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The hex digest of `message` from `state`, the state after its first
/// `done` bytes (a multiple of 64): the remaining whole blocks, then the
/// padding (a 1 bit, zeros, and the length in bits as a big-endian u64
/// ending a block).
fn finish(mut state: [u32; 8], message: &[u8], done: usize) -> String {
    let rest = &message[done..];
    let mut blocks = rest.chunks_exact(64);
    for block in &mut blocks {
        // `chunks_exact(64)` only yields 64-byte slices.
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            compress256(&mut state, std::slice::from_ref(block));
        }
    }
    let tail = blocks.remainder();
    let mut last = [[0u8; 64]; 2];
    last[0][..tail.len()].copy_from_slice(tail);
    last[0][tail.len()] = 0x80;
    // The length needs the last 8 bytes of a block after the 0x80 byte.
    let count = if tail.len() < 56 { 1 } else { 2 };
    let bits = (message.len() as u64).wrapping_mul(8);
    last[count - 1][56..].copy_from_slice(&bits.to_be_bytes());
    compress256(&mut state, &last[..count]);
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    hex::encode(digest)
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::*;

    /// SHA-256's round constants (FIPS 180-4, 4.2.2).
    const ROUND_CONSTANTS: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    /// Compresses the blocks of `a` into `states[0]` and those of `b` into
    /// `states[1]`; both hold the same number of whole 64-byte blocks.
    ///
    /// The SHA instructions keep the state as (A, B, E, F) and (C, D, G, H)
    /// and do two rounds per `sha256rnds2`; the message schedule extends
    /// four words at a time with `sha256msg1`, an add of the words seven
    /// back, and `sha256msg2`. The two messages' steps alternate in one
    /// loop body, so each waits on its own chain while the other's runs.
    ///
    /// # Safety
    /// The CPU must have SHA, SSE4.1 and SSSE3.
    #[target_feature(enable = "sha,sse4.1,ssse3")]
    pub(super) unsafe fn compress_pair(states: &mut [[u32; 8]; 2], a: &[u8], b: &[u8]) {
        debug_assert!(a.len() == b.len() && a.len() % 64 == 0);
        // Message words are big-endian.
        let byte_swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
        let mut abef = [_mm_setzero_si128(); 2];
        let mut cdgh = [_mm_setzero_si128(); 2];
        for (lane, state) in states.iter().enumerate() {
            // SAFETY: 16-byte unaligned loads from an array of 32 bytes.
            let (abcd, efgh) = unsafe {
                (
                    _mm_loadu_si128(state.as_ptr().cast()),
                    _mm_loadu_si128(state.as_ptr().add(4).cast()),
                )
            };
            let badc = _mm_shuffle_epi32(abcd, 0xB1);
            let hgfe = _mm_shuffle_epi32(efgh, 0x1B);
            abef[lane] = _mm_alignr_epi8(badc, hgfe, 8);
            cdgh[lane] = _mm_blend_epi16(hgfe, badc, 0xF0);
        }
        for (block_a, block_b) in a.chunks_exact(64).zip(b.chunks_exact(64)) {
            let (abef_before, cdgh_before) = (abef, cdgh);
            // Sixteen words of each message, four to a register; from round
            // 16 on each register is overwritten by the words 16 further on.
            let mut words = [[_mm_setzero_si128(); 4]; 2];
            for (lane, block) in [block_a, block_b].into_iter().enumerate() {
                for (j, w) in words[lane].iter_mut().enumerate() {
                    // SAFETY: 16 bytes at 16 j of a 64-byte block.
                    *w = _mm_shuffle_epi8(
                        unsafe { _mm_loadu_si128(block.as_ptr().add(16 * j).cast()) },
                        byte_swap,
                    );
                }
            }
            for quad in 0..16 {
                // SAFETY: four constants at 4 quad of 64.
                let k = unsafe { _mm_loadu_si128(ROUND_CONSTANTS.as_ptr().add(4 * quad).cast()) };
                let j = quad % 4;
                for lane in 0..2 {
                    let w = &mut words[lane];
                    if quad >= 4 {
                        // w[j] holds words 4 quad - 16.., the others the
                        // twelve after them.
                        let sigma0 = _mm_sha256msg1_epu32(w[j], w[(j + 1) % 4]);
                        let seven_back = _mm_alignr_epi8(w[(j + 3) % 4], w[(j + 2) % 4], 4);
                        w[j] =
                            _mm_sha256msg2_epu32(_mm_add_epi32(sigma0, seven_back), w[(j + 3) % 4]);
                    }
                    let scheduled = _mm_add_epi32(w[j], k);
                    cdgh[lane] = _mm_sha256rnds2_epu32(cdgh[lane], abef[lane], scheduled);
                    abef[lane] = _mm_sha256rnds2_epu32(
                        abef[lane],
                        cdgh[lane],
                        _mm_shuffle_epi32(scheduled, 0x0E),
                    );
                }
            }
            for lane in 0..2 {
                abef[lane] = _mm_add_epi32(abef[lane], abef_before[lane]);
                cdgh[lane] = _mm_add_epi32(cdgh[lane], cdgh_before[lane]);
            }
        }
        for (lane, state) in states.iter_mut().enumerate() {
            let feba = _mm_shuffle_epi32(abef[lane], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[lane], 0xB1);
            let abcd = _mm_blend_epi16(feba, dchg, 0xF0);
            let efgh = _mm_alignr_epi8(dchg, feba, 8);
            // SAFETY: 16-byte unaligned stores into an array of 32 bytes.
            unsafe {
                _mm_storeu_si128(state.as_mut_ptr().cast(), abcd);
                _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), efgh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ between seeds and positions.
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = crate::testkit::synth::SplitMix64::new(seed);
        (0..len).map(|_| rng.below(256) as u8).collect()
    }

    /// Every photo through the lanes as the pipeline's readers put them:
    /// (tag, hash) in the order they came out.
    fn through_lanes(photos: &[Vec<u8>]) -> Vec<(usize, String)> {
        let mut lanes = Lanes::default();
        let mut out = Vec::new();
        let mut keep = |(tag, bytes, hash): Hashed<usize>| {
            assert_eq!(bytes, photos[tag]);
            out.push((tag, hash));
        };
        for (tag, bytes) in photos.iter().cloned().enumerate() {
            if let Some(hashed) = lanes.feed(tag, bytes) {
                keep(hashed);
            }
        }
        while let Some(hashed) = lanes.drain() {
            keep(hashed);
        }
        out
    }

    #[test]
    fn a_known_answer() {
        // FIPS 180-4's examples, one and two blocks long.
        let two = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec();
        let mut hashed = through_lanes(&[two, b"abc".to_vec()]);
        hashed.sort();
        let hashes: Vec<&str> = hashed.iter().map(|(_, h)| h.as_str()).collect();
        assert_eq!(
            hashes,
            [
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ]
        );
    }

    #[test]
    fn every_photo_hashes_as_alone_whatever_shares_the_lanes_with_it() {
        // Lengths around the padding's one- and two-block cases and around
        // whole blocks, in an order where long and short ones meet in the
        // lanes at every offset.
        let lengths = [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 65_537,
        ];
        let photos: Vec<Vec<u8>> = lengths
            .iter()
            .chain(lengths.iter().rev())
            .chain(&[70_000, 3, 70_000, 64 * 1000, 64 * 1000])
            .enumerate()
            .map(|(i, &len)| bytes(len, i as u64 + 1))
            .collect();
        let hashed = through_lanes(&photos);
        assert_eq!(hashed.len(), photos.len());
        let mut seen = vec![false; photos.len()];
        for (tag, hash) in hashed {
            assert_eq!(
                hash,
                sha256_hex(&photos[tag]),
                "{} bytes",
                photos[tag].len()
            );
            seen[tag] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn the_two_lanes_do_not_mix() {
        // Equal lengths, one byte apart in content: a kernel that crossed
        // the lanes would give both the same hash.
        let a = bytes(64 * 40, 7);
        let mut b = a.clone();
        b[64 * 39 + 5] ^= 1;
        let hashed = through_lanes(&[a.clone(), b.clone()]);
        assert_ne!(hashed[0].1, hashed[1].1);
        for (tag, hash) in hashed {
            assert_eq!(hash, sha256_hex(&[&a, &b][tag][..]));
        }
    }
}
