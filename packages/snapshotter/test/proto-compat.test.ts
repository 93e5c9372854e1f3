// Our .proto files against containerd's own (Debian's golang-github-containerd-containerd-dev,
// installed by scripts/setup.sh): every message, field (name, number, type, label, map types),
// enum value, service and RPC (types and streaming) of ours must exist in containerd's with the
// same shape, and for the messages the snapshotter serves, containerd must have nothing we lack.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { CONTAINERD_PROTO_FILES, protoRoot } from '@nydus-ts/snapshotter';

const containerdApi = '/usr/share/gocode/src/github.com/containerd/containerd/api';

/** Our file `containerd/services/x/v1/x.proto` ↔ containerd's `api/services/x/v1/x.proto`. */
function upstreamPath(ours: string): string {
  return path.join(containerdApi, ours.replace(/^containerd\//, ''));
}

interface Shape {
  messages: Map<string, Map<string, string>>;
  enums: Map<string, Map<string, number>>;
  methods: Map<string, string>;
}

function shapeOf(text: string): Shape {
  const parsed = protobuf.parse(text, { keepCase: true, alternateCommentMode: true });
  const shape: Shape = { messages: new Map(), enums: new Map(), methods: new Map() };
  const visit = (ns: protobuf.NamespaceBase, prefix: string): void => {
    for (const obj of ns.nestedArray) {
      const name = prefix ? `${prefix}.${obj.name}` : obj.name;
      if (obj instanceof protobuf.Type) {
        const fields = new Map<string, string>();
        for (const f of obj.fieldsArray) {
          const map = f instanceof protobuf.MapField ? `map<${f.keyType},` : '';
          fields.set(f.name, `${f.id} ${f.repeated ? 'repeated ' : ''}${map}${f.type}${map ? '>' : ''}`);
        }
        shape.messages.set(name, fields);
        visit(obj, name);
      } else if (obj instanceof protobuf.Enum) {
        shape.enums.set(name, new Map(Object.entries(obj.values)));
      } else if (obj instanceof protobuf.Service) {
        for (const m of obj.methodsArray) {
          shape.methods.set(`${name}.${m.name}`, `${m.requestStream ? 'stream ' : ''}${m.requestType} -> ${m.responseStream ? 'stream ' : ''}${m.responseType}`);
        }
      } else if (obj instanceof protobuf.Namespace) {
        visit(obj, name);
      }
    }
  };
  visit(parsed.root, '');
  // Type names as written differ only by how imports are spelled: compare the last component.
  for (const fields of shape.messages.values()) {
    for (const [k, v] of fields) fields.set(k, v.replace(/[A-Za-z0-9_.]*\.([A-Za-z0-9_]+)(>?)$/, '$1$2'));
  }
  for (const [k, v] of shape.methods) shape.methods.set(k, v.replace(/[A-Za-z0-9_.]*\.([A-Za-z0-9_]+)/g, '$1'));
  return shape;
}

describe('containerd proto compatibility', () => {
  it('has containerd 1.6 .proto files to compare with', () => {
    expect(existsSync(path.join(containerdApi, 'services/snapshots/v1/snapshots.proto')), 'install golang-github-containerd-containerd-dev (scripts/setup.sh)').toBe(true);
  });

  for (const file of CONTAINERD_PROTO_FILES) {
    it(`${file} matches containerd's field numbers and types`, () => {
      const ours = shapeOf(readFileSync(path.join(protoRoot(), file), 'utf8'));
      const theirs = shapeOf(readFileSync(upstreamPath(file), 'utf8'));
      expect(ours.messages.size).toBeGreaterThan(0);
      for (const [msg, fields] of ours.messages) {
        const upstream = theirs.messages.get(msg);
        expect(upstream, `message ${msg} exists upstream`).toBeDefined();
        // Same set of fields, each with the same number, label and type.
        expect(Object.fromEntries(fields), `message ${msg}`).toEqual(Object.fromEntries(upstream!));
      }
      for (const [name, values] of ours.enums) {
        expect(Object.fromEntries(values), `enum ${name}`).toEqual(Object.fromEntries(theirs.enums.get(name) ?? new Map()));
      }
      expect(Object.fromEntries(ours.methods)).toEqual(Object.fromEntries(theirs.methods));
      // Nothing upstream that we left out.
      expect([...theirs.messages.keys()].sort()).toEqual([...ours.messages.keys()].sort());
      expect([...theirs.enums.keys()].sort()).toEqual([...ours.enums.keys()].sort());
    });
  }

  it('the comparison sees a changed field number', () => {
    const text = readFileSync(path.join(protoRoot(), 'containerd/types/mount.proto'), 'utf8');
    const mutated = shapeOf(text.replace('repeated string options = 4;', 'repeated string options = 5;'));
    const upstream = shapeOf(readFileSync(upstreamPath('containerd/types/mount.proto'), 'utf8'));
    expect(Object.fromEntries(mutated.messages.get('containerd.types.Mount')!)).not.toEqual(Object.fromEntries(upstream.messages.get('containerd.types.Mount')!));
  });
});
