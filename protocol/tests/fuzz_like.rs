//! Random and mutated input never panics the decoders and never grows their buffers past
//! the cap.

use serde_json::json;
use std::io::Cursor;
use wf_protocol::{decode_body, encode, read_message, FrameDecoder, PluginMessage, SupervisorMessage};

/// xorshift64*: deterministic, dependency-free pseudo-randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[u8] = b"{}[]\":,\\ 0123456789.-eEtrufalsn\x00\xff\xc3\xa9publishtopicpayloadtype";

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| if rng.below(4) == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] }).collect()
}

fn feed_in_random_chunks(rng: &mut Rng, decoder: &mut FrameDecoder, mut input: &[u8], max: u32) {
    while !input.is_empty() {
        let chunk = 1 + rng.below(input.len().min(300));
        let taken = decoder.push(&input[..chunk]);
        input = &input[taken..];
        assert!(decoder.buffered_capacity() <= max as usize);
        let _ = decoder.next_frame::<PluginMessage>();
    }
    let _ = decoder.finish();
}

#[test]
fn random_streams_never_panic_or_overgrow() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let max = 1 + rng.below(2048) as u32;
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let body_len = rng.below(200);
            let body = random_bytes(&mut rng, body_len);
            let len = if rng.below(5) == 0 { rng.next() as u32 } else { body.len() as u32 };
            stream.extend(len.to_be_bytes());
            stream.extend(&body);
        }
        let mut decoder = FrameDecoder::new(max);
        feed_in_random_chunks(&mut rng, &mut decoder, &stream, max);
        let _ = read_message::<SupervisorMessage>(&mut Cursor::new(&stream), max);
        let body_len = rng.below(300);
        let body = random_bytes(&mut rng, body_len);
        let _ = decode_body::<PluginMessage>(&body, max);
        let _ = decode_body::<SupervisorMessage>(&body, max);
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(0x0dd_c0ffee);
    let msg = PluginMessage::Publish {
        topic: "ui.render".into(),
        payload: json!({"widget": "energy", "text": "42 W \"q\" \\ é", "list": [1, 2.5, null, {"a": [true]}]}),
        claimed_sender: None,
    };
    let frame = encode(&msg).expect("encode");
    let mut decoded_ok = 0;
    for _ in 0..20_000 {
        let mut mutated = frame.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(mutated.len());
            match rng.below(3) {
                0 => mutated[at] = rng.next() as u8,
                1 => mutated[at] = ALPHABET[rng.below(ALPHABET.len())],
                _ => {
                    mutated.remove(at);
                }
            }
        }
        let mut decoder = FrameDecoder::new(4096);
        feed_in_random_chunks(&mut rng, &mut decoder, &mutated, 4096);
        if let Ok(Some(_)) = read_message::<PluginMessage>(&mut Cursor::new(&mutated), 4096) {
            decoded_ok += 1;
        }
    }
    // Some single-byte mutations (inside strings) stay valid; most must not.
    assert!(decoded_ok < 20_000);
}
