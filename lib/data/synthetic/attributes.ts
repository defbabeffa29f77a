// The labels of the synthetic dataset: ±1 attributes (CelebA's names where the generator draws the thing, then our
// own for factors CelebA lacks) and the exact factor columns of `synthetic_factors.csv`. Each attribute is a
// threshold of a recorded factor or an identity trait; the descriptions say which, so a notebook can print them.

import type { FaceSpec } from "./spec";

/** One ±1 column of `list_attr_celeba.txt`. */
export interface SyntheticAttribute {
  readonly name: string;
  /** What +1 means, in terms of the recorded factors and traits. */
  readonly description: string;
  /** True when CelebA has a column of this name (same meaning, as far as a drawing can have it). */
  readonly inCelebA: boolean;
}

interface AttributeRule extends SyntheticAttribute {
  readonly test: (spec: FaceSpec) => boolean;
}

const hasHair = (s: FaceSpec): boolean => s.identity.hairStyle !== "bald";
const longish = (s: FaceSpec): boolean => ["side_part", "bob", "long"].includes(s.identity.hairStyle);
const warmHue = (hue: number): boolean => Math.cos(((hue - 30) * Math.PI) / 180) > 0;

const RULES: readonly AttributeRule[] = [
  { name: "5_o_Clock_Shadow", inCelebA: true, description: "stubble: a faint shadow of hair colour over jaw, chin and upper lip (facial_hair = stubble)", test: (s) => s.identity.facialHair === "stubble" },
  { name: "Arched_Eyebrows", inCelebA: true, description: "eyebrows with a pronounced arch (brow_arch > 0.6)", test: (s) => s.identity.browArch > 0.6 },
  { name: "Bags_Under_Eyes", inCelebA: true, description: "shadowed arcs under the eyes (eye_bags = 1)", test: (s) => s.identity.eyeBags },
  { name: "Bald", inCelebA: true, description: "no hair on top of the head, only a fringe above the ears (hair_style = bald)", test: (s) => s.identity.hairStyle === "bald" },
  { name: "Bangs", inCelebA: true, description: "a fringe covering the forehead down to the brows (bangs = 1)", test: (s) => s.identity.bangs },
  { name: "Big_Lips", inCelebA: true, description: "full lips (lip_fullness > 0.6)", test: (s) => s.identity.lipFullness > 0.6 },
  { name: "Big_Nose", inCelebA: true, description: "a long, wide nose (nose_size > 0.6)", test: (s) => s.identity.noseSize > 0.6 },
  { name: "Black_Hair", inCelebA: true, description: "hair colour black (−1 when bald)", test: (s) => hasHair(s) && s.identity.hairColor === "black" },
  { name: "Blond_Hair", inCelebA: true, description: "hair colour blond (−1 when bald)", test: (s) => hasHair(s) && s.identity.hairColor === "blond" },
  { name: "Blurry", inCelebA: true, description: "the whole image is blurred (blur_sigma ≥ 0.8 px)", test: (s) => s.factors.blurSigma >= 0.8 },
  { name: "Brown_Hair", inCelebA: true, description: "hair colour brown (−1 when bald)", test: (s) => hasHair(s) && s.identity.hairColor === "brown" },
  { name: "Bushy_Eyebrows", inCelebA: true, description: "thick eyebrows (brow_thickness > 0.65)", test: (s) => s.identity.browThickness > 0.65 },
  { name: "Eyeglasses", inCelebA: true, description: "wearing glasses with a dark frame, sometimes tinted lenses (eyeglasses = 1)", test: (s) => s.factors.eyeglasses },
  { name: "Goatee", inCelebA: true, description: "a chin beard without moustache or full beard (facial_hair = goatee)", test: (s) => s.identity.facialHair === "goatee" },
  { name: "Gray_Hair", inCelebA: true, description: "hair colour grey (−1 when bald)", test: (s) => hasHair(s) && s.identity.hairColor === "gray" },
  { name: "Heavy_Makeup", inCelebA: true, description: "lipstick and eyeshadow together (lipstick = 1 and eyeshadow = 1)", test: (s) => s.factors.lipstick && s.factors.eyeshadow },
  { name: "Male", inCelebA: true, description: "the person is a man (male = 1): only men get beards, most bald and short styles; women get makeup and jewellery", test: (s) => s.identity.male },
  { name: "Mouth_Slightly_Open", inCelebA: true, description: "a visible gap between the lips (mouth_open > 0)", test: (s) => s.factors.mouthOpen > 0 },
  { name: "Mustache", inCelebA: true, description: "a moustache above the upper lip (facial_hair = moustache or beard)", test: (s) => s.identity.facialHair === "moustache" || s.identity.facialHair === "beard" },
  { name: "Narrow_Eyes", inCelebA: true, description: "eyes drawn narrow (eye_openness < 0.6)", test: (s) => s.factors.eyeOpenness < 0.6 },
  { name: "No_Beard", inCelebA: true, description: "no moustache, goatee or beard (stubble allowed)", test: (s) => s.identity.facialHair === "none" || s.identity.facialHair === "stubble" },
  { name: "Pale_Skin", inCelebA: true, description: "very light skin (skin_tone > 0.8)", test: (s) => s.identity.skinTone > 0.8 },
  { name: "Receding_Hairline", inCelebA: true, description: "hairline pushed back at the temples (receding_hairline = 1)", test: (s) => s.identity.recedingHairline },
  { name: "Rosy_Cheeks", inCelebA: true, description: "pink patches on the cheeks (rosy_cheeks = 1)", test: (s) => s.identity.rosyCheeks },
  { name: "Smiling", inCelebA: true, description: "mouth corners raised (smile > 0.5)", test: (s) => s.factors.smile > 0.5 },
  { name: "Straight_Hair", inCelebA: true, description: "side-part, bob or long hair with smooth edges (−1 for short styles and bald)", test: (s) => longish(s) && !s.identity.wavyHair },
  { name: "Wavy_Hair", inCelebA: true, description: "side-part, bob or long hair with wavy edges and strands (−1 for short styles and bald)", test: (s) => longish(s) && s.identity.wavyHair },
  { name: "Wearing_Earrings", inCelebA: true, description: "gold studs on the ear lobes (earrings = 1; only when the ears show)", test: (s) => s.factors.earrings },
  { name: "Wearing_Hat", inCelebA: true, description: "a beanie, cap or fedora (hat ≠ none)", test: (s) => s.factors.hat !== "none" },
  { name: "Wearing_Lipstick", inCelebA: true, description: "saturated lip colour (lipstick = 1)", test: (s) => s.factors.lipstick },
  { name: "Wearing_Necklace", inCelebA: true, description: "a gold chain with a pendant below the neck (necklace = 1)", test: (s) => s.factors.necklace },
  { name: "Wearing_Necktie", inCelebA: true, description: "jacket, white shirt collar and tie (necktie = 1)", test: (s) => s.factors.necktie },
  { name: "Young", inCelebA: true, description: "age < 40 (older faces get wrinkles and often grey hair)", test: (s) => s.identity.age < 40 },
  { name: "Red_Hair", inCelebA: false, description: "hair colour red/auburn (−1 when bald)", test: (s) => hasHair(s) && s.identity.hairColor === "red" },
  { name: "Long_Hair", inCelebA: false, description: "hair down to the chin or longer (hair_style = bob or long)", test: (s) => s.identity.hairStyle === "bob" || s.identity.hairStyle === "long" },
  { name: "Light_Eyes", inCelebA: false, description: "blue, green or grey irises (eye_color ∈ {blue, green, gray})", test: (s) => ["blue", "green", "gray"].includes(s.identity.eyeColor) },
  { name: "Wide_Face", inCelebA: false, description: "wide cheekbones (face_width > 0.5)", test: (s) => s.identity.faceWidth > 0.5 },
  { name: "Tinted_Lenses", inCelebA: false, description: "glasses with dark tinted lenses (eyeglasses = 1 and tinted_lenses = 1)", test: (s) => s.factors.eyeglasses && s.identity.tintedLenses },
  { name: "Bright_Background", inCelebA: false, description: "background lightness above one half (background_lightness > 0.5)", test: (s) => s.factors.backgroundLightness > 0.5 },
  { name: "Warm_Background", inCelebA: false, description: "background hue within 90° of orange, i.e. red, orange, yellow (cos(background_hue_deg − 30°) > 0)", test: (s) => warmHue(s.factors.backgroundHueDeg) },
  { name: "Large_Face", inCelebA: false, description: "person drawn larger than nominal (scale > 1)", test: (s) => s.factors.scale > 1 },
  { name: "Face_Left_Of_Centre", inCelebA: false, description: "face centre left of its nominal place in the image (offset_x_px < 0)", test: (s) => s.factors.offsetX < 0 },
  { name: "Face_Above_Centre", inCelebA: false, description: "face centre above its nominal place in the image (offset_y_px < 0)", test: (s) => s.factors.offsetY < 0 },
  { name: "Tilted_Clockwise", inCelebA: false, description: "in-plane rotation clockwise as seen in the image (rotation_deg > 0)", test: (s) => s.factors.rotationDeg > 0 },
  { name: "Facing_Left", inCelebA: false, description: "head turned so the features shift towards the image's left (yaw < 0)", test: (s) => s.factors.yaw < 0 },
  { name: "Lit_From_Left", inCelebA: false, description: "key light on the image's left: that side of the person brighter, the other darker (light_x < 0)", test: (s) => s.factors.lightX < 0 },
  { name: "Bright_Lighting", inCelebA: false, description: "person exposed brighter than nominal (exposure > 1)", test: (s) => s.factors.exposure > 1 },
];

/** Every attribute column, in file order (CelebA's names in CelebA's order, then our own). */
export const SYNTHETIC_ATTRIBUTES: readonly SyntheticAttribute[] = RULES.map(({ name, description, inCelebA }) => ({ name, description, inCelebA }));

/** The attribute names, in column order. */
export const SYNTHETIC_ATTRIBUTE_NAMES: readonly string[] = RULES.map((r) => r.name);

/** The ±1 values of every attribute for one image, in `SYNTHETIC_ATTRIBUTE_NAMES` order. */
export function syntheticAttributeValues(spec: FaceSpec): Int8Array {
  return Int8Array.from(RULES, (rule) => (rule.test(spec) ? 1 : -1));
}

/** One column of `synthetic_factors.csv`. */
export interface SyntheticFactor {
  readonly name: string;
  readonly description: string;
  /** `number` (decimal), `flag` (0/1) or `category` (a word from a fixed list). */
  readonly kind: "number" | "flag" | "category";
}

interface FactorRule extends SyntheticFactor {
  readonly value: (spec: FaceSpec) => number | boolean | string;
}

const FACTOR_RULES: readonly FactorRule[] = [
  { name: "file", kind: "category", description: "image file name in img_align_celeba/", value: (s) => s.file },
  { name: "identity", kind: "number", description: "1-based identity (same as identity_CelebA.txt)", value: (s) => s.identity.id },
  { name: "background_lightness", kind: "number", description: "HSL lightness of the background's middle, 0..1 (top is lighter, bottom darker)", value: (s) => s.factors.backgroundLightness },
  { name: "background_hue_deg", kind: "number", description: "HSL hue of the background, degrees 0..360", value: (s) => s.factors.backgroundHueDeg },
  { name: "background_saturation", kind: "number", description: "HSL saturation of the background, 0..1", value: (s) => s.factors.backgroundSaturation },
  { name: "scale", kind: "number", description: "size of the person relative to nominal (1 = eyes 38 px apart)", value: (s) => s.factors.scale },
  { name: "offset_x_px", kind: "number", description: "face centre's horizontal offset from (89, 119); negative = left", value: (s) => s.factors.offsetX },
  { name: "offset_y_px", kind: "number", description: "face centre's vertical offset from (89, 119); negative = up", value: (s) => s.factors.offsetY },
  { name: "rotation_deg", kind: "number", description: "in-plane rotation about the face centre; positive = clockwise in the image", value: (s) => s.factors.rotationDeg },
  { name: "yaw", kind: "number", description: "head turn −1..1; negative = features shifted to the image's left", value: (s) => s.factors.yaw },
  { name: "light_x", kind: "number", description: "key light side −1 (left) .. 1 (right); |light_x| = strength of side shading", value: (s) => s.factors.lightX },
  { name: "exposure", kind: "number", description: "brightness multiplier of the person's colours", value: (s) => s.factors.exposure },
  { name: "blur_sigma", kind: "number", description: "Gaussian blur of the whole image in px (0 = none)", value: (s) => s.factors.blurSigma },
  { name: "smile", kind: "number", description: "smile 0..1 (corners up, eyes narrowed)", value: (s) => s.factors.smile },
  { name: "mouth_open", kind: "number", description: "mouth opening 0..1 (0 = closed)", value: (s) => s.factors.mouthOpen },
  { name: "eye_openness", kind: "number", description: "rendered eye opening = eye_size × (1 − 0.3 × smile)", value: (s) => s.factors.eyeOpenness },
  { name: "eyeglasses", kind: "flag", description: "glasses drawn", value: (s) => s.factors.eyeglasses },
  { name: "hat", kind: "category", description: "none | beanie | cap | fedora", value: (s) => s.factors.hat },
  { name: "hat_hue_deg", kind: "number", description: "hue of the hat (meaningless when hat = none)", value: (s) => s.factors.hatHueDeg },
  { name: "lipstick", kind: "flag", description: "lipstick drawn", value: (s) => s.factors.lipstick },
  { name: "eyeshadow", kind: "flag", description: "eyeshadow drawn", value: (s) => s.factors.eyeshadow },
  { name: "necktie", kind: "flag", description: "jacket, collar and tie drawn", value: (s) => s.factors.necktie },
  { name: "necklace", kind: "flag", description: "necklace drawn", value: (s) => s.factors.necklace },
  { name: "earrings", kind: "flag", description: "earrings drawn", value: (s) => s.factors.earrings },
  { name: "clothing_hue_deg", kind: "number", description: "hue of the top / jacket", value: (s) => s.factors.clothingHueDeg },
  { name: "clothing_lightness", kind: "number", description: "HSL lightness of the top / jacket", value: (s) => s.factors.clothingLightness },
  { name: "male", kind: "flag", description: "identity is a man", value: (s) => s.identity.male },
  { name: "age", kind: "number", description: "identity's age in years", value: (s) => s.identity.age },
  { name: "skin_tone", kind: "number", description: "0 = deepest … 1 = palest skin", value: (s) => s.identity.skinTone },
  { name: "face_width", kind: "number", description: "cheekbone width 0..1", value: (s) => s.identity.faceWidth },
  { name: "jaw_width", kind: "number", description: "0 = pointed … 1 = square jaw", value: (s) => s.identity.jawWidth },
  { name: "chin_length", kind: "number", description: "0 = short … 1 = long chin", value: (s) => s.identity.chinLength },
  { name: "eye_color", kind: "category", description: "brown | hazel | green | blue | gray", value: (s) => s.identity.eyeColor },
  { name: "eye_size", kind: "number", description: "eye opening at rest 0.55..1", value: (s) => s.identity.eyeSize },
  { name: "brow_thickness", kind: "number", description: "eyebrow thickness 0..1", value: (s) => s.identity.browThickness },
  { name: "brow_arch", kind: "number", description: "eyebrow arch 0..1", value: (s) => s.identity.browArch },
  { name: "nose_size", kind: "number", description: "nose size 0..1", value: (s) => s.identity.noseSize },
  { name: "lip_fullness", kind: "number", description: "lip thickness 0..1", value: (s) => s.identity.lipFullness },
  { name: "mouth_width", kind: "number", description: "mouth width 0..1", value: (s) => s.identity.mouthWidth },
  { name: "hair_color", kind: "category", description: "black | brown | blond | gray | red", value: (s) => s.identity.hairColor },
  { name: "hair_shade", kind: "number", description: "−1 darker … 1 lighter shade of the hair colour", value: (s) => s.identity.hairShade },
  { name: "hair_style", kind: "category", description: "bald | buzz | short | side_part | bob | long", value: (s) => s.identity.hairStyle },
  { name: "hair_volume", kind: "number", description: "how far the hair stands off the head 0..1", value: (s) => s.identity.hairVolume },
  { name: "wavy_hair", kind: "flag", description: "wavy outlines and strands", value: (s) => s.identity.wavyHair },
  { name: "bangs", kind: "flag", description: "fringe over the forehead", value: (s) => s.identity.bangs },
  { name: "receding_hairline", kind: "flag", description: "hairline pushed back at the temples", value: (s) => s.identity.recedingHairline },
  { name: "facial_hair", kind: "category", description: "none | stubble | moustache | goatee | beard", value: (s) => s.identity.facialHair },
  { name: "rosy_cheeks", kind: "flag", description: "pink cheeks", value: (s) => s.identity.rosyCheeks },
  { name: "eye_bags", kind: "flag", description: "arcs under the eyes", value: (s) => s.identity.eyeBags },
  { name: "glasses_shape", kind: "category", description: "round | rectangular (when eyeglasses = 1)", value: (s) => s.identity.glassesShape },
  { name: "tinted_lenses", kind: "flag", description: "this identity's glasses have tinted lenses", value: (s) => s.identity.tintedLenses },
  { name: "lipstick_shade", kind: "number", description: "index of the lipstick shade 0..3 (when lipstick = 1)", value: (s) => s.identity.lipstickShade },
];

/** Every column of `synthetic_factors.csv`, in file order. */
export const SYNTHETIC_FACTORS: readonly SyntheticFactor[] = FACTOR_RULES.map(({ name, description, kind }) => ({ name, description, kind }));

function formatFactorValue(v: number | boolean | string): string {
  if (typeof v === "boolean") return v ? "1" : "0";
  return String(v);
}

/** The header line of `synthetic_factors.csv` (no trailing newline). */
export function syntheticFactorHeader(): string {
  return FACTOR_RULES.map((r) => r.name).join(",");
}

/** One data line of `synthetic_factors.csv` for `spec` (no trailing newline). Values never contain commas. */
export function syntheticFactorRow(spec: FaceSpec): string {
  return FACTOR_RULES.map((r) => formatFactorValue(r.value(spec))).join(",");
}

/** A parsed `synthetic_factors.csv`: `rows[i][j]` is the text of column `names[j]` for image i. */
export interface SyntheticFactorTable {
  readonly names: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** Parses `synthetic_factors.csv` (a header row, then one comma-separated row per image). `source` names the file. */
export function parseSyntheticFactorsCsv(text: string, source = "synthetic_factors.csv"): SyntheticFactorTable {
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  if (lines.length === 0) throw new Error(`${source}: empty file; expected a header row starting with "file,identity"`);
  const names = lines[0].split(",");
  const rows = lines.slice(1).map((line, i) => {
    const fields = line.split(",");
    if (fields.length !== names.length) throw new Error(`${source}, line ${i + 2}: ${fields.length} fields, the header has ${names.length}`);
    return fields;
  });
  return { names, rows };
}

/** One numeric column (numbers and 0/1 flags) of a factor table, or throws naming the column and the bad value. */
export function syntheticFactorColumn(table: SyntheticFactorTable, name: string): Float64Array {
  const j = table.names.indexOf(name);
  if (j < 0) throw new Error(`factor "${name}" is not in the table (it has: ${table.names.join(", ")})`);
  return Float64Array.from(table.rows, (row, i) => {
    const v = Number(row[j]);
    if (row[j] === "" || !Number.isFinite(v)) throw new Error(`factor "${name}", row ${i + 1}: "${row[j]}" is not a number (use the text rows for categories)`);
    return v;
  });
}
