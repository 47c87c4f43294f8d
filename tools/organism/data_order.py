"""Which chunk the trainer reads at each step (train.py); a pure function of the step, so a run's data
order replays exactly. Kept apart from train.py so it can be checked without torch
(test/organism/run8-training.test.ts runs it with python3).
"""


def chunk_for_step(step, reuse, lag, start_step=0, first_chunk=0, fresh_start=False):
    """Chunk trained on at `step`. A resumed run (start_step > 0) reads fresh chunks from first_chunk
    on and replays only chunks of its own, so it never waits for one its generators do not make.
    Round r of the run reads fresh chunk r, then its replays r - lag, r - 2 lag, ... (reuse reads).
    Without fresh_start a replay that would reach before the run's first chunk is clamped to it (runs
    1-7: the first ~100 steps of a run read its first chunk again and again). With fresh_start a round
    reads only the replays that exist: rounds 0 .. lag-1 one chunk, lag .. 2 lag-1 two, and so on up to
    reuse, so every chunk is read exactly reuse times (at rounds c, c + lag, c + 2 lag, ...)."""
    k = step - start_step
    if fresh_start:
        first_round, steps_before = 0, 0
        for reads in range(1, reuse):  # the ramp: lag rounds of 1 read, lag rounds of 2, ...
            if k < steps_before + lag * reads:
                r, back = divmod(k - steps_before, reads)
                return first_chunk + first_round + r - lag * back
            steps_before += lag * reads
            first_round += lag
        r, back = divmod(k - steps_before, reuse)
        return first_chunk + first_round + r - lag * back
    fresh = k // reuse
    back = k % reuse
    return first_chunk + (fresh if back == 0 else max(0, fresh - lag * back))

if __name__ == "__main__":
    # python3 data_order.py REUSE LAG START_STEP FIRST_CHUNK FRESH_START(0/1) STEPS -> the chunks, one line
    import sys

    reuse, lag, start, first, fresh, steps = (int(a) for a in sys.argv[1:7])
    print(" ".join(str(chunk_for_step(s, reuse, lag, start, first, bool(fresh))) for s in range(start, start + steps)))
