import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TASK_STATES } from '../core/task-state.ts';

/**
 * The messages of Mesos's v1 protobufs (`include/mesos/v1/mesos.proto`) that Slipway speaks, in
 * their JSON mapping (snake_case field names, enums by name, ids as `{value}`). Each is a TypeBox
 * schema, so the same definition gives the TypeScript type and the validator the HTTP layer uses.
 * Unknown fields are allowed, as Mesos's JSON parser allows them.
 */

const Id = () => Type.Object({ value: Type.String({ minLength: 1 }) });
export const FrameworkID = Id();
export const AgentID = Id();
export const OfferID = Id();
export const TaskID = Id();
export type FrameworkID = Static<typeof FrameworkID>;
export type AgentID = Static<typeof AgentID>;
export type OfferID = Static<typeof OfferID>;
export type TaskID = Static<typeof TaskID>;

const Enum = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));
const Opt = <T extends TSchema>(s: T) => Type.Optional(s);

export const Resource = Type.Object({
  name: Type.String(),
  type: Enum(['SCALAR', 'RANGES', 'SET'] as const),
  scalar: Opt(Type.Object({ value: Type.Number() })),
  ranges: Opt(Type.Object({ range: Type.Array(Type.Object({ begin: Type.Integer(), end: Type.Integer() })) })),
  set: Opt(Type.Object({ item: Type.Array(Type.String()) })),
  role: Opt(Type.String()),
  reservations: Opt(Type.Array(Type.Object({ type: Enum(['STATIC', 'DYNAMIC'] as const), role: Type.String(), principal: Opt(Type.String()) }))),
  allocation_info: Opt(Type.Object({ role: Type.String() })),
});
export type Resource = Static<typeof Resource>;

export const Attribute = Type.Object({
  name: Type.String(),
  type: Enum(['SCALAR', 'RANGES', 'SET', 'TEXT'] as const),
  scalar: Opt(Type.Object({ value: Type.Number() })),
  ranges: Opt(Type.Object({ range: Type.Array(Type.Object({ begin: Type.Integer(), end: Type.Integer() })) })),
  set: Opt(Type.Object({ item: Type.Array(Type.String()) })),
  text: Opt(Type.Object({ value: Type.String() })),
});
export type Attribute = Static<typeof Attribute>;

export const Labels = Type.Object({ labels: Type.Array(Type.Object({ key: Type.String(), value: Opt(Type.String()) })) });
export type Labels = Static<typeof Labels>;

/**
 * Mesos's Secret: a REFERENCE names a secret of the secret store (`/auth/v1/secrets`), which the
 * master resolves when it launches the task and hands to the agent alone (never stored with the
 * task, never in an API answer). VALUE secrets (the value in the TaskInfo) are refused: the value
 * would sit in the master's state.
 */
export const Secret = Type.Object({
  type: Enum(['REFERENCE', 'VALUE', 'UNKNOWN'] as const),
  reference: Opt(Type.Object({ name: Type.String(), key: Opt(Type.String()) })),
  value: Opt(Type.Object({ data: Type.String() })),
});
export type Secret = Static<typeof Secret>;

export const Environment = Type.Object({
  variables: Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), value: Opt(Type.String()), type: Opt(Enum(['VALUE', 'SECRET'] as const)), secret: Opt(Secret) })),
});

export const CommandInfo = Type.Object({
  value: Opt(Type.String()),
  /** Default true: run `value` under `sh -c`. When false, `value` is the program and `arguments` its argv. */
  shell: Opt(Type.Boolean()),
  arguments: Opt(Type.Array(Type.String())),
  environment: Opt(Environment),
  /**
   * Mesos's CommandInfo.URI, and two fields of Slipway's own: `sha256`, the hex digest the
   * fetched file must have (a mismatch fails the launch), and `mode`, its octal file mode
   * (the config center's files use both).
   */
  uris: Opt(
    Type.Array(
      Type.Object({
        value: Type.String(),
        executable: Opt(Type.Boolean()),
        extract: Opt(Type.Boolean()),
        cache: Opt(Type.Boolean()),
        output_file: Opt(Type.String()),
        sha256: Opt(Type.String({ pattern: '^[0-9a-f]{64}$' })),
        mode: Opt(Type.String({ pattern: '^0?[0-7]{3}$' })),
      }),
    ),
  ),
  user: Opt(Type.String()),
});
export type CommandInfo = Static<typeof CommandInfo>;

/** A bind mount (`host_path`), or a file holding a secret (`source.type` SECRET: written 0600 for the task). */
export const Volume = Type.Object({
  container_path: Type.String({ minLength: 1 }),
  host_path: Opt(Type.String()),
  mode: Opt(Enum(['RW', 'RO'] as const)),
  source: Opt(Type.Object({ type: Type.String(), secret: Opt(Secret) })),
});
export type Volume = Static<typeof Volume>;

export const ContainerInfo = Type.Object({
  type: Enum(['DOCKER', 'MESOS'] as const),
  docker: Opt(
    Type.Object({
      image: Type.String({ minLength: 1 }),
      network: Opt(Enum(['HOST', 'BRIDGE', 'NONE', 'USER'] as const)),
      port_mappings: Opt(Type.Array(Type.Object({ host_port: Type.Integer(), container_port: Type.Integer(), protocol: Opt(Type.String()) }))),
      privileged: Opt(Type.Boolean()),
      parameters: Opt(Type.Array(Type.Object({ key: Type.String(), value: Type.String() }))),
      force_pull_image: Opt(Type.Boolean()),
    }),
  ),
  volumes: Opt(Type.Array(Volume)),
});
export type ContainerInfo = Static<typeof ContainerInfo>;

export const DurationInfo = Type.Object({ nanoseconds: Type.Integer({ minimum: 0 }) });

export const HealthCheck = Type.Object({
  type: Enum(['COMMAND', 'HTTP', 'TCP'] as const),
  delay_seconds: Opt(Type.Number({ minimum: 0 })),
  interval_seconds: Opt(Type.Number({ minimum: 0 })),
  timeout_seconds: Opt(Type.Number({ minimum: 0 })),
  consecutive_failures: Opt(Type.Integer({ minimum: 0 })),
  grace_period_seconds: Opt(Type.Number({ minimum: 0 })),
  command: Opt(CommandInfo),
  http: Opt(Type.Object({ port: Type.Integer({ minimum: 1, maximum: 65535 }), path: Opt(Type.String()), scheme: Opt(Type.String()), protocol: Opt(Type.String()) })),
  tcp: Opt(Type.Object({ port: Type.Integer({ minimum: 1, maximum: 65535 }) })),
});
export type HealthCheck = Static<typeof HealthCheck>;

export const KillPolicy = Type.Object({ grace_period: Opt(DurationInfo) });
export type KillPolicy = Static<typeof KillPolicy>;

export const TaskInfo = Type.Object({
  name: Type.String(),
  task_id: TaskID,
  agent_id: AgentID,
  resources: Type.Array(Resource),
  command: Opt(CommandInfo),
  container: Opt(ContainerInfo),
  health_check: Opt(HealthCheck),
  labels: Opt(Labels),
  kill_policy: Opt(KillPolicy),
  executor: Opt(Type.Unknown()),
});
export type TaskInfo = Static<typeof TaskInfo>;

export const TaskState = Enum(TASK_STATES);

export const TaskStatus = Type.Object({
  task_id: TaskID,
  state: TaskState,
  message: Opt(Type.String()),
  source: Opt(Enum(['SOURCE_MASTER', 'SOURCE_AGENT', 'SOURCE_EXECUTOR'] as const)),
  reason: Opt(Type.String()),
  agent_id: Opt(AgentID),
  timestamp: Opt(Type.Number()),
  /** Base64 of 16 bytes. Present on updates that must be acknowledged; absent on master-generated ones. */
  uuid: Opt(Type.String()),
  healthy: Opt(Type.Boolean()),
  labels: Opt(Labels),
});
export type TaskStatus = Static<typeof TaskStatus>;

export const FrameworkCapability = Enum([
  'MULTI_ROLE',
  'PARTITION_AWARE',
  'TASK_KILLING_STATE',
  'GPU_RESOURCES',
  'SHARED_RESOURCES',
  'REGION_AWARE',
  'RESERVATION_REFINEMENT',
  'REVOCABLE_RESOURCES',
] as const);
export type FrameworkCapability = Static<typeof FrameworkCapability>;

export const FrameworkInfo = Type.Object({
  user: Opt(Type.String()),
  name: Type.String({ minLength: 1 }),
  id: Opt(FrameworkID),
  failover_timeout: Opt(Type.Number({ minimum: 0 })),
  checkpoint: Opt(Type.Boolean()),
  role: Opt(Type.String()),
  roles: Opt(Type.Array(Type.String({ minLength: 1 }))),
  hostname: Opt(Type.String()),
  principal: Opt(Type.String()),
  webui_url: Opt(Type.String()),
  capabilities: Opt(Type.Array(Type.Object({ type: FrameworkCapability }))),
  labels: Opt(Labels),
});
export type FrameworkInfo = Static<typeof FrameworkInfo>;

export const Offer = Type.Object({
  id: OfferID,
  framework_id: FrameworkID,
  agent_id: AgentID,
  hostname: Type.String(),
  resources: Type.Array(Resource),
  attributes: Type.Array(Attribute),
  allocation_info: Type.Object({ role: Type.String() }),
});
export type Offer = Static<typeof Offer>;

export const Filters = Type.Object({ refuse_seconds: Opt(Type.Number({ minimum: 0 })) });
export type Filters = Static<typeof Filters>;

export const MasterInfo = Type.Object({ id: Type.String(), hostname: Type.String(), port: Type.Integer(), version: Type.String() });
export type MasterInfo = Static<typeof MasterInfo>;
