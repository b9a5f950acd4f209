// etcd's gRPC services as etcd3 asks @grpc/proto-loader for them, built from
// etcd's schema with only what a gRPC client uses. packaging/bundle-cli.mjs
// puts this in place of proto-loader in the agent's and `weft leases`'
// bundles (etcdSchema there).
//
// proto-loader also makes every message's and file's descriptor (for gRPC
// reflection, which a client never asks for), loads protobufjs' descriptor
// module to do it, and resolves every type of the schema up front: about
// 60 ms of each start's 100 in etcd3's schema, before the first byte goes to
// etcd. Here the types are resolved when a method first uses them. The
// services are the same: test/unit/agent-bundle.test.ts compares them with
// proto-loader's, method by method, and messages through both.
import protobuf from 'protobufjs';

/** What gRPC's client reads of a method (grpc-js makeClientConstructor). */
export interface ClientMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: unknown) => Uint8Array;
  requestDeserialize: (bytes: Uint8Array) => unknown;
  responseSerialize: (value: unknown) => Uint8Array;
  responseDeserialize: (bytes: Uint8Array) => unknown;
  /** The method's name as proto-loader gives it, lodash's camelCase ("HashKV": "hashKv"): etcd3 calls methods by it. */
  originalName: string;
}

export type ServiceDefinitions = Record<string, Record<string, ClientMethod>>;

/** lodash.camelcase for a protobuf name (ASCII letters and digits): words at case changes, the first lower case, the rest capitalised. */
export function camelCase(name: string): string {
  const words = name.match(/[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+/g) ?? [];
  return words.map((w, i) => (i === 0 ? w.toLowerCase() : w[0].toUpperCase() + w.slice(1).toLowerCase())).join('');
}

function serializer(type: () => protobuf.Type): (value: unknown) => Uint8Array {
  return (value) => {
    const t = type();
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${t.name} structure, got array instead`);
    return t.encode(t.fromObject(value as Record<string, unknown>)).finish();
  };
}

function deserializer(type: () => protobuf.Type, options: protobuf.IConversionOptions): (bytes: Uint8Array) => unknown {
  return (bytes) => {
    const t = type();
    return t.toObject(t.decode(bytes), options);
  };
}

function clientMethod(m: protobuf.Method, service: string, options: protobuf.IConversionOptions): ClientMethod {
  // Method.resolve() is typed as ReflectionObject's; it returns the method, its two types resolved.
  const request = (): protobuf.Type => (m.resolve() as protobuf.Method).resolvedRequestType!;
  const response = (): protobuf.Type => (m.resolve() as protobuf.Method).resolvedResponseType!;
  return {
    path: `/${service}/${m.name}`,
    requestStream: !!m.requestStream,
    responseStream: !!m.responseStream,
    requestSerialize: serializer(request),
    requestDeserialize: deserializer(request, options),
    responseSerialize: serializer(response),
    responseDeserialize: deserializer(response, options),
    originalName: camelCase(m.name),
  };
}

/**
 * The services of a schema in protobufjs' JSON form, by full name
 * ("etcdserverpb.KV"), as proto-loader's fromJSON names them; messages are
 * not listed (grpc-js's loadPackageDefinition skips them). `options` are
 * how replies are converted to objects (etcd3: keepCase, longs as strings...).
 */
export function etcdServices(json: protobuf.INamespace, options: protobuf.IConversionOptions): ServiceDefinitions {
  // Not Root.fromJSON, which resolves every type of the schema (a field's type, each method's) now.
  const root = new protobuf.Root();
  if (json.options) root.setOptions(json.options);
  root.addJSON(json.nested ?? {});
  const out: ServiceDefinitions = {};
  const walk = (ns: protobuf.NamespaceBase, prefix: string): void => {
    for (const obj of ns.nestedArray) {
      const name = prefix ? `${prefix}.${obj.name}` : obj.name;
      if (obj instanceof protobuf.Service) {
        const methods: Record<string, ClientMethod> = {};
        for (const m of obj.methodsArray) methods[m.name] = clientMethod(m, name, options);
        out[name] = methods;
      } else if (obj instanceof protobuf.Namespace && !(obj instanceof protobuf.Type)) walk(obj, name);
    }
  };
  walk(root, '');
  return out;
}
