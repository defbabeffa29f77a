// Who is who during fine-tuning: a seeded split of PEOPLE into those trained on and those held out (whose faces the
// model never sees when the run excludes them, so that retrieval measured on them says whether it learned to tell
// people apart rather than to remember faces), the sample of held-out faces that is measured, and identity-balanced
// batches (P people × K pictures each, as metric-learning samplers draw them, e.g. pytorch-metric-learning's
// MPerClassSampler): with random batches from thousands of people, two pictures of one person rarely meet in a batch,
// and a loss that rewards pulling a person's pictures together never gets to.

import { seededShuffle } from "../util/random";

// ---------------------------------------------------------------------------------------------------------------
// Held-out people

export interface PeopleSplit {
  /** The people held out (identity numbers), ascending. */
  readonly heldOutPeople: readonly number[];
  /** Dataset indices of the other people's faces, ascending: what a run that excludes the held-out people trains on. */
  readonly trainIndices: readonly number[];
  /** Dataset indices of every face of a held-out person, ascending. */
  readonly heldOutIndices: readonly number[];
}

/**
 * Holds out `fraction` of the people, seeded: people with two or more pictures and people with one are drawn
 * separately (the same fraction of each), so that the held-out faces have as many same-person pairs as the data
 * allows and keep their share of one-picture strangers; at least two people with several pictures when four or
 * more have several. A person is on one side only.
 */
export function splitPeople(ids: ArrayLike<number>, fraction: number, seed: number): PeopleSplit {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`splitPeople: the held-out fraction must be in [0, 1), got ${fraction}`);
  const counts = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) counts.set(ids[i], (counts.get(ids[i]) ?? 0) + 1);
  const people = [...counts.keys()].sort((a, b) => a - b);
  const held = new Set<number>();
  for (const [group, several] of [[1, true], [2, false]] as const) {
    const members = people.filter((p) => counts.get(p)! > 1 === several);
    let take = Math.round(fraction * members.length);
    // retrieval needs two held-out people with several pictures (a stranger to beat), when 2 stay for training
    if (several && fraction > 0 && take < 2 && members.length >= 4) take = 2;
    seededShuffle(members, seed, 0x4e1d, group)
      .slice(0, take)
      .forEach((p) => held.add(p));
  }
  const trainIndices: number[] = [];
  const heldOutIndices: number[] = [];
  for (let i = 0; i < ids.length; i++) (held.has(ids[i]) ? heldOutIndices : trainIndices).push(i);
  return { heldOutPeople: [...held].sort((a, b) => a - b), trainIndices, heldOutIndices };
}

/**
 * Up to `max` faces of the held-out people for measuring, whole people at a time (seeded): people with several
 * pictures first (they make the queries), then one-picture people as distractors; ascending dataset indices.
 */
export function heldOutSample(split: PeopleSplit, ids: ArrayLike<number>, max: number, seed: number): number[] {
  const byPerson = new Map<number, number[]>();
  for (const i of split.heldOutIndices) byPerson.set(ids[i], [...(byPerson.get(ids[i]) ?? []), i]);
  const order = seededShuffle(split.heldOutPeople, seed, 0x5a3b1e);
  const several = order.filter((p) => (byPerson.get(p)?.length ?? 0) > 1);
  const single = order.filter((p) => (byPerson.get(p)?.length ?? 0) === 1);
  const out: number[] = [];
  for (const p of [...several, ...single]) {
    const faces = byPerson.get(p) ?? [];
    if (out.length + faces.length <= max) out.push(...faces);
  }
  return out.sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------------------
// Identity-balanced batches

export interface PersonBatchSettings {
  readonly batchSize: number;
  /** K: pictures of each person in a batch; P = batchSize / K people. */
  readonly imagesPerPerson: number;
  readonly seed: number;
}

/** An epoch's batches as one list of dataset indices (batch b is positions b·batchSize …), and how many batches. */
export interface EpochPlan {
  readonly order: readonly number[];
  readonly steps: number;
}

/** The faces `indices` grouped by person. */
function byPersonOf(indices: readonly number[], ids: ArrayLike<number>): Map<number, number[]> {
  const byPerson = new Map<number, number[]>();
  for (const i of indices) byPerson.set(ids[i], [...(byPerson.get(ids[i]) ?? []), i]);
  return byPerson;
}

/** Checks P × K against the data and returns P. */
export function peoplePerBatch(settings: PersonBatchSettings, people: number): number {
  const { batchSize, imagesPerPerson: k } = settings;
  if (!Number.isInteger(k) || k < 2) throw new Error(`identity-balanced batches need at least 2 pictures per person (finetune.imagesPerPerson), got ${k}`);
  if (batchSize % k !== 0) {
    throw new Error(`finetune.batchSize ${batchSize} is not a multiple of finetune.imagesPerPerson ${k}: a batch holds P people × ${k} pictures. Choose a batch size of P × ${k}.`);
  }
  const p = batchSize / k;
  if (p < 2) throw new Error(`a batch of ${batchSize} with ${k} pictures per person holds one person: no one to tell apart. Raise finetune.batchSize or lower finetune.imagesPerPerson.`);
  if (people < p) throw new Error(`a batch needs ${p} different people but the training faces show only ${people}: lower finetune.batchSize or raise finetune.imagesPerPerson.`);
  return p;
}

/** Batches in an epoch of identity-balanced batches: every person's ⌈pictures / K⌉ slots, P slots a batch. */
export function personBatchSteps(indices: readonly number[], ids: ArrayLike<number>, settings: PersonBatchSettings): number {
  const byPerson = byPersonOf(indices, ids);
  const p = peoplePerBatch(settings, byPerson.size);
  let slots = 0;
  for (const faces of byPerson.values()) slots += Math.ceil(faces.length / settings.imagesPerPerson);
  return Math.ceil(slots / p);
}

/**
 * Epoch `epoch` of identity-balanced batches over the faces `indices`: each batch holds P = batchSize / K different
 * people with K pictures each. Every person gets ⌈pictures / K⌉ slots per epoch and deals out its pictures in a
 * seeded order, so an epoch shows every picture at least once; a person with fewer than K pictures repeats them
 * (as different augmented views when augmentation is on). The slots are shuffled (seeded by seed and epoch); a slot
 * whose person is already in the batch waits for the next one; slots still waiting at the end take free places
 * of batches without their person (swapping with another batch when needed), and places still free go to people
 * drawn at random. Deterministic in (indices, ids, settings, epoch).
 */
export function personBatchEpoch(indices: readonly number[], ids: ArrayLike<number>, settings: PersonBatchSettings, epoch: number): EpochPlan {
  const k = settings.imagesPerPerson;
  const byPerson = byPersonOf(indices, ids);
  const p = peoplePerBatch(settings, byPerson.size);
  const people = [...byPerson.keys()].sort((a, b) => a - b);
  const decks = new Map(people.map((person) => [person, seededShuffle(byPerson.get(person)!, settings.seed, 0xdec, epoch, person)]));
  const dealt = new Map(people.map((person) => [person, 0]));
  const deal = (person: number): number[] => {
    const deck = decks.get(person)!;
    const at = dealt.get(person)!;
    dealt.set(person, at + k);
    return Array.from({ length: k }, (_, j) => deck[(at + j) % deck.length]);
  };
  const slots = seededShuffle(people.flatMap((person) => Array<number>(Math.ceil(byPerson.get(person)!.length / k)).fill(person)), settings.seed, 0x5107, epoch);
  const steps = Math.ceil(slots.length / p);
  // people per batch; `filler` marks the places completed with a person drawn at random
  const batches: { person: number; filler: boolean }[][] = [];
  let waiting: number[] = [];
  let next = 0;
  for (let b = 0; b < steps; b++) {
    const batch: { person: number; filler: boolean }[] = [];
    const has = (person: number): boolean => batch.some((e) => e.person === person);
    const stillWaiting: number[] = [];
    for (const person of waiting) {
      if (batch.length < p && !has(person)) batch.push({ person, filler: false });
      else stillWaiting.push(person);
    }
    waiting = stillWaiting;
    while (batch.length < p && next < slots.length) {
      const person = slots[next++];
      if (has(person)) waiting.push(person);
      else batch.push({ person, filler: false });
    }
    batches.push(batch);
  }
  waiting.push(...slots.slice(next));
  // the slots still waiting take the free places of batches without their person, swapping with another batch's
  // person when the only free places are in batches that have theirs
  const free = (): { b: number; j: number }[] => batches.flatMap((batch, b) => (batch.length < p ? [{ b, j: batch.length }] : []));
  for (const person of waiting) {
    const places = free();
    const open = places.find(({ b }) => !batches[b].some((e) => e.person === person));
    if (open !== undefined) {
      batches[open.b].push({ person, filler: false });
      continue;
    }
    const place = places[0];
    if (place === undefined) continue;
    const target = batches[place.b];
    const donor = batches.findIndex((batch) => !batch.some((e) => e.person === person) && batch.some((e) => !target.some((t) => t.person === e.person)));
    if (donor < 0) continue; // the person is in every batch: nowhere to put another slot of theirs
    const j = batches[donor].findIndex((e) => !target.some((t) => t.person === e.person));
    target.push(batches[donor][j]);
    batches[donor][j] = { person, filler: false };
  }
  // free places left: people drawn at random
  const extra = seededShuffle(people, settings.seed, 0xe7a, epoch);
  let nextExtra = 0;
  for (const batch of batches) {
    while (batch.length < p) {
      const person = extra[nextExtra++ % extra.length];
      if (!batch.some((e) => e.person === person)) batch.push({ person, filler: true });
    }
  }
  const order: number[] = [];
  for (const batch of batches) for (const { person } of batch) order.push(...deal(person));
  return { order, steps };
}
