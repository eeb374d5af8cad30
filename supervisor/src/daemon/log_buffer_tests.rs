use super::*;

const MIB: usize = 1024 * 1024;
const T0: Duration = Duration::ZERO;

fn at(monotonic: Duration) -> LogTime {
    LogTime { monotonic, unix_ms: 1_000_000 + u64::try_from(monotonic.as_millis()).unwrap_or(0) }
}

trait PushStdout {
    fn out(&mut self, bytes: &[u8], now: Duration) -> PushOutcome;
}

impl PushStdout for LogBuffer {
    fn out(&mut self, bytes: &[u8], now: Duration) -> PushOutcome {
        self.push(LogStream::Stdout, bytes, at(now))
    }
}

fn unlimited_rate(capacity: usize) -> LogLimits {
    LogLimits { capacity, bytes_per_sec: u64::MAX, burst: u64::MAX }
}

fn buffer(capacity: usize) -> LogBuffer {
    LogBuffer::new(unlimited_rate(capacity), T0)
}

fn text(read: &LogRead) -> String {
    String::from_utf8_lossy(&read.bytes()).into_owned()
}

#[test]
fn bytes_come_back_in_order_with_their_offsets() {
    let mut log = buffer(64);
    log.out(b"one\n", T0);
    log.out(b"two\n", T0);
    let all = log.read_from(0, usize::MAX);
    assert_eq!((text(&all).as_str(), all.offset, all.next_offset, all.missed), ("one\ntwo\n", 0, 8, 0));
    let rest = log.read_from(4, usize::MAX);
    assert_eq!((text(&rest).as_str(), rest.offset), ("two\n", 4));
}

#[test]
fn the_ring_keeps_the_most_recent_bytes_across_the_seam() {
    let mut log = buffer(10);
    log.out(b"0123456", T0);
    log.out(b"789abcd", T0);
    assert_eq!((log.start_offset(), log.end_offset(), log.len()), (4, 14, 10));
    assert_eq!(text(&log.read_from(0, usize::MAX)), "456789abcd");
    log.out(b"efghijklmnopqrstuvwxyz", T0);
    assert_eq!(text(&log.read_from(0, usize::MAX)), "qrstuvwxyz");
    assert_eq!(log.start_offset(), 26);
}

#[test]
fn a_flood_of_100_mib_without_a_newline_keeps_memory_fixed() {
    const PIPE_READ: usize = 64 * 1024;
    let capacity = DEFAULT_CAPACITY;
    let mut log = buffer(capacity);
    let piece = vec![b'a'; PIPE_READ];
    let mut peak = 0;
    for _ in 0..(100 * MIB / PIPE_READ) {
        log.out(&piece, T0);
        peak = peak.max(log.memory_bytes());
    }
    assert!(peak <= LogBuffer::memory_bound(capacity), "{peak}");
    assert_eq!(log.memory_bytes(), peak);
    assert_eq!(log.capacity(), capacity);
    assert_eq!(log.len(), capacity);
    assert_eq!(log.end_offset(), 100 * MIB as u64);
    assert_eq!(log.dropped_total(), 0);
    // With no newline at all, the tail still shows the most recent bytes.
    let tail = log.tail(1024);
    assert_eq!((tail.bytes().len(), tail.next_offset), (1024, 100 * MIB as u64));
}

#[test]
fn a_ring_filled_by_small_reads_never_allocates_past_its_capacity() {
    let capacity = 100_000;
    let mut log = buffer(capacity);
    for _ in 0..100 {
        log.out(&[b'b'; 4096], T0);
        assert!(log.ring.capacity() <= capacity, "{}", log.ring.capacity());
    }
    assert_eq!(log.len(), capacity);
}

#[test]
fn a_flood_pushed_at_once_never_allocates_its_size() {
    let mut log = buffer(4096);
    let flood = vec![b'\x1b'; 8 * MIB];
    log.out(&flood, T0);
    assert!(log.memory_bytes() <= LogBuffer::memory_bound(4096), "{}", log.memory_bytes());
    assert_eq!(log.end_offset(), 4 * 8 * MIB as u64);
}

#[test]
fn a_quiet_plugin_does_not_cost_the_full_capacity() {
    let mut log = buffer(DEFAULT_CAPACITY);
    log.out(b"hello\n", T0);
    assert!(log.ring.capacity() < 1024, "{}", log.ring.capacity());
}

#[test]
fn output_over_the_rate_is_dropped_and_counted() {
    let limits = LogLimits { capacity: 1024, bytes_per_sec: 100, burst: 100 };
    let mut log = LogBuffer::new(limits, T0);
    assert_eq!(log.out(&[b'x'; 150], T0), PushOutcome { accepted: 100, dropped: 50 });
    assert_eq!(log.out(b"yy", T0), PushOutcome { accepted: 0, dropped: 2 });
    assert_eq!(log.out(&[b'z'; 30], Duration::from_millis(200)), PushOutcome { accepted: 20, dropped: 10 });
    assert_eq!((log.accepted_total(), log.dropped_total(), log.end_offset()), (120, 62, 120));
    assert_eq!(log.read_from(0, 0).dropped_total, 62);
}

#[test]
fn the_default_limits_cap_a_flood_at_the_burst() {
    let mut log = LogBuffer::new(LogLimits::default(), T0);
    let outcome = log.out(&vec![b'a'; 10 * MIB], T0);
    assert_eq!(outcome.accepted, DEFAULT_BURST);
    assert_eq!(outcome.dropped, 10 * MIB as u64 - DEFAULT_BURST);
}

#[test]
fn a_follower_resumes_from_its_offset_and_learns_what_it_missed() {
    let mut log = buffer(8);
    log.out(b"abcd", T0);
    let first = log.read_from(0, usize::MAX);
    assert_eq!((text(&first).as_str(), first.next_offset), ("abcd", 4));
    log.out(b"ef", T0);
    let second = log.read_from(first.next_offset, usize::MAX);
    assert_eq!((text(&second).as_str(), second.missed), ("ef", 0));
    log.out(b"ghijklmnop", T0);
    let third = log.read_from(second.next_offset, usize::MAX);
    assert_eq!((text(&third).as_str(), third.offset, third.missed), ("ijklmnop", 8, 2));
}

#[test]
fn a_follower_reads_at_most_what_it_asks_for() {
    let mut log = buffer(64);
    log.out(b"0123456789", T0);
    let part = log.read_from(2, 3);
    assert_eq!((text(&part).as_str(), part.next_offset), ("234", 5));
}

#[test]
fn an_offset_beyond_the_end_reads_nothing_and_waits_at_the_end() {
    let mut log = buffer(64);
    log.out(b"abc", T0);
    let read = log.read_from(1_000, usize::MAX);
    assert_eq!((read.bytes().len(), read.offset, read.next_offset, read.missed), (0, 3, 3, 0));
}

#[test]
fn tail_leaves_out_a_line_cut_by_the_window() {
    let mut log = buffer(64);
    log.out(b"first line\nsecond\nthird\n", T0);
    assert_eq!(text(&log.tail(10)), "third\n");
    assert_eq!(text(&log.tail(13)), "second\nthird\n");
    assert_eq!(text(&log.tail(1_000)), "first line\nsecond\nthird\n");
}

#[test]
fn tail_keeps_a_partial_last_line() {
    let mut log = buffer(64);
    log.out(b"done\nworking", T0);
    assert_eq!(text(&log.tail(9)), "working");
    assert_eq!(text(&log.tail(12)), "done\nworking");
}

#[test]
fn tail_returns_the_cut_window_when_no_full_line_would_remain() {
    let mut log = buffer(64);
    log.out(b"a very long line\n", T0);
    assert_eq!(text(&log.tail(5)), "line\n");
}

#[test]
fn tail_drops_a_line_whose_beginning_the_ring_lost() {
    for pushes in [&[&b"abc\ndefghij\nkl"[..]][..], &[b"abcde", b"fghij\nkl"]] {
        let mut log = buffer(8);
        for p in pushes {
            log.out(p, T0);
        }
        assert_eq!(text(&log.read_from(0, usize::MAX)), "fghij\nkl");
        assert_eq!(text(&log.tail(8)), "kl");
    }
}

#[test]
fn tail_keeps_the_oldest_line_when_the_ring_starts_right_after_a_newline() {
    for pushes in [&[&b"abc\nwxyz\n123"[..]][..], &[b"abc\n", b"wxyz\n123"]] {
        let mut log = buffer(8);
        for p in pushes {
            log.out(p, T0);
        }
        assert_eq!(log.start_offset(), 4);
        assert_eq!(text(&log.tail(8)), "wxyz\n123");
    }
}

#[test]
fn control_characters_are_stored_escaped() {
    let mut log = buffer(64);
    log.out(b"\x1b]0;owned\x07\n", T0);
    assert_eq!(text(&log.read_from(0, usize::MAX)), "\\x1b]0;owned\\x07\n");
}

#[test]
fn a_zero_capacity_buffer_holds_nothing_but_keeps_counting() {
    let mut log = buffer(0);
    log.out(b"abc\n", T0);
    assert_eq!(
        (log.len(), log.start_offset(), log.end_offset(), log.memory_bytes() <= SCRATCH_CAPACITY),
        (0, 4, 4, true)
    );
    let read = log.read_from(0, usize::MAX);
    assert_eq!((read.bytes().len(), read.missed), (0, 4));
    assert!(log.tail(10).pieces.is_empty());
}

fn stream_of(read: &LogRead) -> Vec<(LogStream, u64, u64, String)> {
    read.pieces.iter().map(|p| (p.stream, p.time_ms, p.offset, String::from_utf8_lossy(&p.data).into_owned())).collect()
}

#[test]
fn pieces_say_which_stream_each_run_came_from_and_when() {
    use LogStream::{Stderr, Stdout};
    let mut log = buffer(64);
    let ms = Duration::from_millis;
    log.push(Stdout, b"a\n", at(T0));
    log.push(Stderr, b"oops\n", at(ms(10)));
    log.push(Stdout, b"b\n", at(ms(20)));
    log.push(Stdout, b"c\n", at(ms(900)));
    log.push(Stdout, b"d\n", at(ms(1_500)));
    let t = |m: u64| 1_000_000 + m;
    let expected = [
        (Stdout, t(0), 0, "a\n".to_owned()),
        (Stderr, t(10), 2, "oops\n".to_owned()),
        (Stdout, t(20), 7, "b\nc\n".to_owned()),
        (Stdout, t(1_500), 11, "d\n".to_owned()),
    ];
    assert_eq!(stream_of(&log.read_from(0, usize::MAX)), expected);
    // A read starting inside a piece starts the piece there.
    assert_eq!(
        stream_of(&log.read_from(9, 3)),
        [(Stdout, t(20), 9, "c\n".to_owned()), (Stdout, t(1_500), 11, "d".to_owned())]
    );
}

#[test]
fn pieces_whose_bytes_the_ring_dropped_are_forgotten() {
    let mut log = buffer(8);
    log.push(LogStream::Stdout, b"12345678", at(T0));
    log.push(LogStream::Stderr, b"abcdefgh", at(T0));
    assert_eq!(log.pieces.len(), 1);
    assert_eq!(stream_of(&log.read_from(0, usize::MAX)), [(LogStream::Stderr, 1_000_000, 8, "abcdefgh".to_owned())]);
}

#[test]
fn output_switching_streams_cannot_grow_the_index() {
    let capacity = DEFAULT_CAPACITY;
    let mut log = buffer(capacity);
    for i in 0..(4 * MAX_PIECES) {
        let stream = if i % 2 == 0 { LogStream::Stdout } else { LogStream::Stderr };
        log.push(stream, b"x\n", at(T0));
    }
    assert_eq!(log.pieces.len(), MAX_PIECES);
    assert!(log.memory_bytes() <= LogBuffer::memory_bound(capacity), "{}", log.memory_bytes());
    // The oldest bytes went with their pieces, although the ring itself had room.
    assert_eq!((log.start_offset(), log.len()), (2 * 3 * MAX_PIECES as u64, 2 * MAX_PIECES));
    let read = log.read_from(0, usize::MAX);
    assert_eq!((read.pieces.len(), read.missed), (MAX_PIECES, 2 * 3 * MAX_PIECES as u64));
    assert!(read.pieces.iter().all(|p| p.data == b"x\n"));
    // Eviction happened at line boundaries here, so the tail keeps its first line.
    assert_eq!(log.tail(usize::MAX).bytes().len(), 2 * MAX_PIECES);
}

#[test]
fn each_stream_has_its_own_escaping_state() {
    let mut log = buffer(64);
    log.push(LogStream::Stdout, b"\xc2", at(T0));
    log.push(LogStream::Stderr, b"\x9b!", at(T0));
    log.push(LogStream::Stdout, b"\x85", at(T0));
    // stderr's lone 0x9b is not a C1 control; stdout's C2 85 (NEL) is.
    assert_eq!(log.read_from(0, usize::MAX).bytes(), b"\x9b!\\xc2\\x85");
}
