"""Writes a generated sequence data set for the sequence example (spec 07,
examples/tagger.mass): examples/data/topics/{train,val}/{tokens,topic,
score}.npy. Each sample is 32 token ids from a vocabulary of 1000:

- topic (i32, 8 classes): ids 100 t to 100 t + 99 are topic t's words; a
  sample holds 12 to 18 of its topic's words and 3 of other topics' words,
  so the topic is the one whose words come most often;
- score (f32 [N, 1]): ids 800-809 are positive words, 900-909 negative
  ones; the score is the positive share of a sample's 10 sentiment words.

The rest are filler ids of random topics. Seeded; idempotent.

usage: /usr/bin/python3 examples/data/make_topics.py [N_TRAIN N_VAL]
"""
import os
import sys

import numpy as np

T, TOPICS = 32, 8


def samples(n, rng):
    tokens = np.zeros((n, T), dtype=np.int32)
    topic = rng.integers(0, TOPICS, n).astype(np.int32)
    score = np.zeros((n, 1), dtype=np.float32)
    for i in range(n):
        own = int(rng.integers(12, 19))
        others = [t for t in range(TOPICS) if t != topic[i]]
        words = list(100 * topic[i] + rng.integers(0, 100, own))
        words += [100 * int(rng.choice(others)) + int(rng.integers(0, 100)) for _ in range(3)]
        positive = int(rng.integers(0, 11))
        words += list(800 + rng.integers(0, 10, positive))
        words += list(900 + rng.integers(0, 10, 10 - positive))
        # Filler: words of topics chosen afresh for each slot (no topic
        # gains more than chance from it).
        while len(words) < T:
            words.append(100 * int(rng.integers(0, TOPICS)) + int(rng.integers(0, 100)))
        words = words[:T]
        rng.shuffle(words)
        tokens[i] = words
        score[i, 0] = positive / 10.0
    return tokens, topic, score


def main():
    n_train, n_val = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (8192, 512)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topics")
    rng = np.random.default_rng(12)
    for split, n in (("train", n_train), ("val", n_val)):
        tokens, topic, score = samples(n, rng)
        d = os.path.join(out, split)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "tokens.npy"), tokens)
        np.save(os.path.join(d, "topic.npy"), topic)
        np.save(os.path.join(d, "score.npy"), score)
    print(f"make_topics: {n_train} train and {n_val} val samples in {out}")


if __name__ == "__main__":
    main()
