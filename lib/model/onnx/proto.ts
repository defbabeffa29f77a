// ONNX models without a protobuf library: the few ONNX messages our graphs use (ModelProto, GraphProto, NodeProto,
// TensorProto, ValueInfoProto, AttributeProto; field numbers from onnx/onnx.proto) written by hand in protobuf's
// wire format — varints, fixed32 floats and length-delimited fields — and a builder that adds nodes and constants
// with fresh names. Used by lib/model/onnx/export (the embedding model) and onnx/train-graph (the training passes);
// tested by decoding what it writes in test/onnx-export.test.ts.

// ---------------------------------------------------------------------------------------------------------------
// Protobuf wire format

/** Encoded protobuf bytes as a list of chunks, so big tensors are copied once, when the model is joined. */
export interface ProtoBytes {
  readonly length: number;
  readonly chunks: readonly Uint8Array[];
}

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

function bytesOf(chunk: Uint8Array): ProtoBytes {
  return { length: chunk.length, chunks: [chunk] };
}

/** The parts one after the other. */
export function concatProto(parts: readonly ProtoBytes[]): ProtoBytes {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (const part of parts) {
    for (const c of part.chunks) chunks.push(c);
    length += part.length;
  }
  return { length, chunks };
}

/** All chunks in one array. */
export function joinProto(bytes: ProtoBytes): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let offset = 0;
  for (const c of bytes.chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** A base-128 varint; negative numbers as 64-bit two's complement (10 bytes), as protobuf writes int64 and int32. */
export function encodeVarint(value: number | bigint): Uint8Array {
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new RangeError(`encodeVarint: ${value} is not a safe integer`);
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

function tag(field: number, wire: number): Uint8Array {
  return encodeVarint(field * 8 + wire);
}

/** An integer field (int32, int64, enum). */
export function varintField(field: number, value: number | bigint): ProtoBytes {
  return concatProto([bytesOf(tag(field, WIRE_VARINT)), bytesOf(encodeVarint(value))]);
}

/** A `float` field (fixed32, little-endian). */
export function floatField(field: number, value: number): ProtoBytes {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setFloat32(0, value, true);
  return concatProto([bytesOf(tag(field, WIRE_FIXED32)), bytesOf(data)]);
}

/** A `bytes` or embedded-message field. */
export function bytesField(field: number, value: ProtoBytes | Uint8Array): ProtoBytes {
  const payload = value instanceof Uint8Array ? bytesOf(value) : value;
  return concatProto([bytesOf(tag(field, WIRE_LENGTH_DELIMITED)), bytesOf(encodeVarint(payload.length)), payload]);
}

/** A `string` field (UTF-8). */
export function stringField(field: number, value: string): ProtoBytes {
  return bytesField(field, new TextEncoder().encode(value));
}

/** A message from its fields. */
export function message(fields: readonly ProtoBytes[]): ProtoBytes {
  return concatProto(fields);
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX messages (onnx.proto field numbers)

/** TensorProto.DataType.FLOAT and INT64. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

/** An attribute value: an int, a list of ints, or a float. */
export type OnnxAttribute = { readonly int: number } | { readonly ints: readonly number[] } | { readonly float: number } | { readonly string: string };

export interface OnnxNode {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Readonly<Record<string, OnnxAttribute>>;
}

/** A constant of the graph (weights): float32 or int64 data in row-major order. */
export interface OnnxInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

/** A graph input or output: float32 with these dimensions (a string is a symbolic dimension such as "batch"). */
export interface OnnxValueInfo {
  readonly name: string;
  readonly dims: readonly (number | string)[];
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxInitializer[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
}

export interface OnnxModelInfo {
  /** ONNX IR version (7: ONNX 1.7+; any current runtime reads it). */
  readonly irVersion: number;
  /** Version of the default operator set (ai.onnx). */
  readonly opsetVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString?: string;
  /** Free-form key/value metadata (ModelProto.metadata_props). */
  readonly metadata?: Readonly<Record<string, string>>;
}

// AttributeProto.AttributeType
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_INTS = 7;

/** AttributeProto: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20. */
export function encodeAttribute(name: string, value: OnnxAttribute): ProtoBytes {
  const fields: ProtoBytes[] = [stringField(1, name)];
  if ("int" in value) fields.push(varintField(20, ATTRIBUTE_INT), varintField(3, value.int));
  else if ("ints" in value) fields.push(varintField(20, ATTRIBUTE_INTS), ...value.ints.map((v) => varintField(8, v)));
  else if ("string" in value) fields.push(varintField(20, ATTRIBUTE_STRING), stringField(4, value.string));
  else fields.push(varintField(20, ATTRIBUTE_FLOAT), floatField(2, value.float));
  return message(fields);
}

/** NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5. */
export function encodeNode(node: OnnxNode): ProtoBytes {
  const attributes = Object.entries(node.attributes ?? {}).map(([name, value]) => bytesField(5, encodeAttribute(name, value)));
  return message([
    ...node.inputs.map((i) => stringField(1, i)),
    ...node.outputs.map((o) => stringField(2, o)),
    stringField(3, node.name),
    stringField(4, node.opType),
    ...attributes,
  ]);
}

/** TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian, as ONNX requires). */
export function encodeTensor(tensor: OnnxInitializer): ProtoBytes {
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (count !== tensor.data.length) {
    throw new RangeError(`ONNX initializer ${tensor.name}: dims [${tensor.dims.join(", ")}] hold ${count} values, the data has ${tensor.data.length}`);
  }
  const raw = littleEndianBytes(tensor.data);
  return message([
    ...tensor.dims.map((d) => varintField(1, d)),
    varintField(2, tensor.data instanceof Float32Array ? ONNX_FLOAT : ONNX_INT64),
    stringField(8, tensor.name),
    bytesField(9, raw),
  ]);
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function littleEndianBytes(data: Float32Array | BigInt64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const bytes = new Uint8Array(data.byteLength);
  const view = new DataView(bytes.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else data.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return bytes;
}

/** ValueInfoProto{name = 1, type = 2: TypeProto{tensor_type = 1: {elem_type = 1, shape = 2: {dim = 1: {dim_value = 1 | dim_param = 2}}}}}. */
export function encodeValueInfo(value: OnnxValueInfo): ProtoBytes {
  const dims = value.dims.map((d) => bytesField(1, message([typeof d === "number" ? varintField(1, d) : stringField(2, d)])));
  const tensorType = message([varintField(1, ONNX_FLOAT), bytesField(2, message(dims))]);
  return message([stringField(1, value.name), bytesField(2, message([bytesField(1, tensorType)]))]);
}

/** GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12. */
export function encodeGraph(graph: OnnxGraph): ProtoBytes {
  return message([
    ...graph.nodes.map((n) => bytesField(1, encodeNode(n))),
    stringField(2, graph.name),
    ...graph.initializers.map((t) => bytesField(5, encodeTensor(t))),
    ...graph.inputs.map((v) => bytesField(11, encodeValueInfo(v))),
    ...graph.outputs.map((v) => bytesField(12, encodeValueInfo(v))),
  ]);
}

/** ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7,
 *  opset_import = 8 (OperatorSetIdProto{domain = 1, version = 2}), metadata_props = 14 ({key = 1, value = 2}). */
export function encodeModel(graph: OnnxGraph, info: OnnxModelInfo): Uint8Array {
  const metadata = Object.entries(info.metadata ?? {}).map(([k, v]) => bytesField(14, message([stringField(1, k), stringField(2, v)])));
  return joinProto(
    message([
      varintField(1, info.irVersion),
      stringField(2, info.producerName),
      stringField(3, info.producerVersion),
      ...(info.docString === undefined ? [] : [stringField(6, info.docString)]),
      bytesField(7, encodeGraph(graph)),
      bytesField(8, message([stringField(1, ""), varintField(2, info.opsetVersion)])),
      ...metadata,
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Building a graph

/** Builds the graph node by node, with fresh value names. */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private count = 0;

  add(opType: string, inputs: readonly string[], attributes?: Readonly<Record<string, OnnxAttribute>>, output?: string): string {
    return this.addMany(opType, inputs, 1, attributes, output === undefined ? undefined : [output])[0];
  }

  /** A node with several outputs (e.g. MaxPool's values and indices). */
  addMany(opType: string, inputs: readonly string[], count: number, attributes?: Readonly<Record<string, OnnxAttribute>>, outputs?: readonly string[]): readonly string[] {
    const name = `${opType.toLowerCase()}_${this.count++}`;
    const outs = outputs ?? Array.from({ length: count }, (_, k) => (k === 0 ? name : `${name}:${k}`));
    this.nodes.push({ opType, name, inputs, outputs: outs, attributes });
    return outs;
  }

  /** A float constant; a name given before refers to the constant made then (the same value, by construction). */
  constant(name: string, dims: readonly number[], data: Float32Array): string {
    if (!this.initializers.some((t) => t.name === name)) this.initializers.push({ name, dims, data });
    return name;
  }

  int64Constant(name: string, values: readonly number[]): string {
    if (!this.initializers.some((t) => t.name === name)) this.initializers.push({ name, dims: [values.length], data: BigInt64Array.from(values, (v) => BigInt(v)) });
    return name;
  }
}
