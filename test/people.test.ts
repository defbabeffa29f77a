// Who is who during fine-tuning (lib/data/people): the held-out split is of people, not faces; the measured sample
// is whole held-out people; identity-balanced batches hold P different people × K pictures, never a held-out
// person, are deterministic in the seed and show every training picture once an epoch.

import { describe, expect, it } from "vitest";
import { heldOutSample, personBatchEpoch, personBatchSteps, splitPeople } from "../lib/data/people";
import { Rng } from "../lib/util/random";

/** 250 people × 20 pictures, spread over the listing as the synthetic faces are. */
const synthetic = (): number[] => {
  const rng = new Rng(11);
  const ids = Array.from({ length: 5000 }, (_, i) => i % 250);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids;
};

/** CelebA-like: 300 people with 1 to 30 pictures (a third with one), identity numbers not contiguous. */
const celebaLike = (): number[] => {
  const rng = new Rng(12);
  const ids: number[] = [];
  for (let p = 0; p < 300; p++) {
    const n = rng.chance(1 / 3) ? 1 : 1 + Math.floor(rng.next() * 30);
    for (let k = 0; k < n; k++) ids.push(1000 + 7 * p);
  }
  return ids;
};

const peopleOf = (indices: readonly number[], ids: readonly number[]): Set<number> => new Set(indices.map((i) => ids[i]));

describe("held-out people", () => {
  it("splits people, not faces: every face of a held-out person is held out, and nobody is on both sides", () => {
    for (const ids of [synthetic(), celebaLike()]) {
      const split = splitPeople(ids, 0.2, 0);
      const train = peopleOf(split.trainIndices, ids);
      const held = peopleOf(split.heldOutIndices, ids);
      expect([...held].sort((a, b) => a - b)).toEqual(split.heldOutPeople);
      expect([...held].filter((p) => train.has(p))).toEqual([]);
      expect(split.trainIndices.length + split.heldOutIndices.length).toBe(ids.length);
      expect(new Set([...split.trainIndices, ...split.heldOutIndices]).size).toBe(ids.length);
      for (let i = 0; i < ids.length; i++) expect(held.has(ids[i])).toBe(split.heldOutIndices.includes(i));
    }
  });

  it("holds out the asked fraction of people, the same share of one-picture people and of the others", () => {
    const synth = splitPeople(synthetic(), 0.2, 0);
    expect(synth.heldOutPeople.length).toBe(50);
    expect(synth.heldOutIndices.length).toBe(1000);
    const ids = celebaLike();
    const counts = new Map<number, number>();
    ids.forEach((p) => counts.set(p, (counts.get(p) ?? 0) + 1));
    const singles = [...counts].filter(([, c]) => c === 1).map(([p]) => p);
    const several = [...counts].filter(([, c]) => c > 1).map(([p]) => p);
    const split = splitPeople(ids, 0.25, 3);
    const held = new Set(split.heldOutPeople);
    expect(singles.filter((p) => held.has(p)).length).toBe(Math.round(0.25 * singles.length));
    expect(several.filter((p) => held.has(p)).length).toBe(Math.round(0.25 * several.length));
    expect(splitPeople(ids, 0, 3).heldOutIndices).toEqual([]);
    // a tiny dataset still holds out two people with several pictures, so that retrieval has a stranger to beat
    const six = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6];
    expect(splitPeople(six, 0.1, 0).heldOutPeople.filter((p) => p < 6).length).toBe(2);
    expect(splitPeople([0, 0, 1, 1, 2, 2], 0.1, 0).heldOutPeople).toEqual([]);
    expect(() => splitPeople(ids, 1, 3)).toThrow(/held-out fraction must be in \[0, 1\)/);
  });

  it("is a function of the seed", () => {
    const ids = celebaLike();
    expect(splitPeople(ids, 0.2, 4)).toEqual(splitPeople(ids, 0.2, 4));
    expect(splitPeople(ids, 0.2, 5).heldOutPeople).not.toEqual(splitPeople(ids, 0.2, 4).heldOutPeople);
  });

  it("measures whole held-out people, those with several pictures first, up to the limit", () => {
    const ids = celebaLike();
    const split = splitPeople(ids, 0.3, 1);
    const sample = heldOutSample(split, ids, 200, 1);
    expect(sample.length).toBeLessThanOrEqual(200);
    expect(sample).toEqual([...sample].sort((a, b) => a - b));
    const held = new Set(split.heldOutPeople);
    for (const p of peopleOf(sample, ids)) {
      expect(held.has(p)).toBe(true);
      expect(sample.filter((i) => ids[i] === p).length).toBe(ids.filter((q) => q === p).length); // whole people
    }
    expect(sample.filter((i) => ids.filter((q) => q === ids[i]).length > 1).length).toBeGreaterThan(150);
    expect(heldOutSample(split, ids, 100_000, 1)).toEqual(split.heldOutIndices);
    expect(heldOutSample(split, ids, 200, 1)).toEqual(sample);
  });
});

describe("identity-balanced batches (P people × K pictures)", () => {
  const check = (ids: number[], batchSize: number, k: number): void => {
    const split = splitPeople(ids, 0.2, 0);
    const settings = { batchSize, imagesPerPerson: k, seed: 9 };
    const plan = personBatchEpoch(split.trainIndices, ids, settings, 0);
    expect(plan.steps).toBe(personBatchSteps(split.trainIndices, ids, settings));
    expect(plan.order.length).toBe(plan.steps * batchSize);
    const held = new Set(split.heldOutPeople);
    const training = new Set(split.trainIndices);
    for (let b = 0; b < plan.steps; b++) {
      const batch = plan.order.slice(b * batchSize, (b + 1) * batchSize);
      const perPerson = new Map<number, number>();
      for (const i of batch) {
        expect(training.has(i)).toBe(true);
        expect(held.has(ids[i])).toBe(false);
        perPerson.set(ids[i], (perPerson.get(ids[i]) ?? 0) + 1);
      }
      expect(perPerson.size).toBe(batchSize / k);
      expect([...perPerson.values()].every((c) => c === k)).toBe(true);
    }
    // one epoch shows every training picture
    expect(new Set(plan.order).size).toBe(split.trainIndices.length);
  };

  it("every batch holds P different people with K pictures each, none held out, and an epoch covers every training face", () => {
    check(synthetic(), 32, 4);
    check(synthetic(), 32, 2);
    check(celebaLike(), 32, 4);
    check(celebaLike(), 16, 2);
  });

  it("an epoch of 200 people × 20 pictures in 8 × 4 batches shows each picture exactly once", () => {
    const ids = synthetic();
    const split = splitPeople(ids, 0.2, 0);
    const plan = personBatchEpoch(split.trainIndices, ids, { batchSize: 32, imagesPerPerson: 4, seed: 1 }, 0);
    expect(plan.steps).toBe(125);
    expect([...plan.order].sort((a, b) => a - b)).toEqual(split.trainIndices);
  });

  it("a person with fewer than K pictures repeats them (different views once augmented)", () => {
    const ids = [0, 1, 1, 2, 2, 2, 3, 3, 3, 3];
    const all = ids.map((_, i) => i);
    const plan = personBatchEpoch(all, ids, { batchSize: 4, imagesPerPerson: 2, seed: 0 }, 0);
    const batches = Array.from({ length: plan.steps }, (_, b) => plan.order.slice(b * 4, b * 4 + 4));
    const withPerson0 = batches.filter((b) => b.includes(0));
    expect(withPerson0.length).toBeGreaterThan(0);
    for (const b of withPerson0) expect(b.filter((i) => i === 0).length).toBe(2);
  });

  it("is deterministic in the seed and the epoch, and differs between them", () => {
    const ids = celebaLike();
    const all = ids.map((_, i) => i);
    const settings = { batchSize: 32, imagesPerPerson: 4, seed: 3 };
    expect(personBatchEpoch(all, ids, settings, 0)).toEqual(personBatchEpoch(all, ids, settings, 0));
    expect(personBatchEpoch(all, ids, settings, 1).order).not.toEqual(personBatchEpoch(all, ids, settings, 0).order);
    expect(personBatchEpoch(all, ids, { ...settings, seed: 4 }, 0).order).not.toEqual(personBatchEpoch(all, ids, settings, 0).order);
  });

  it("refuses batches that cannot hold P × K with a message naming the settings", () => {
    const ids = synthetic();
    const all = ids.map((_, i) => i);
    expect(() => personBatchEpoch(all, ids, { batchSize: 30, imagesPerPerson: 4, seed: 0 }, 0)).toThrow(/finetune\.batchSize 30 is not a multiple of finetune\.imagesPerPerson 4/);
    expect(() => personBatchEpoch(all, ids, { batchSize: 4, imagesPerPerson: 4, seed: 0 }, 0)).toThrow(/holds one person/);
    expect(() => personBatchEpoch(all, ids, { batchSize: 32, imagesPerPerson: 1, seed: 0 }, 0)).toThrow(/at least 2 pictures per person/);
    expect(() => personBatchEpoch([0, 1, 2], [5, 5, 6], { batchSize: 8, imagesPerPerson: 2, seed: 0 }, 0)).toThrow(/needs 4 different people but the training faces show only 2/);
  });
});
