/**
 * What the services framework asks of the config center when it launches an instance (issue 13,
 * "Contracts"): the port is the framework's own (it never imports `config`); `server` implements
 * it over the config center in `slipway up`.
 *
 * An app is linked to a config service by two labels: `SLIPWAY_CONFIG_SERVICE` and
 * `SLIPWAY_CONFIG_ENV`. Its tasks get the release current at launch: environment variables
 * (`CONFIG_SERVER`, `SERVICE`, `SLIPWAY_CONFIG_ENV`, `SLIPWAY_CONFIG_RELEASE`,
 * `SLIPWAY_CONFIG_DIR`), and each file as a fetcher URI with its digest, at its destination (under
 * the sandbox for a process task; mounted at the destination for a Docker task). The release is
 * recorded on the task as the label `SLIPWAY_CONFIG_RELEASE`.
 */

export const CONFIG_SERVICE_LABEL = 'SLIPWAY_CONFIG_SERVICE';
export const CONFIG_ENV_LABEL = 'SLIPWAY_CONFIG_ENV';
export const CONFIG_RELEASE_LABEL = 'SLIPWAY_CONFIG_RELEASE';

export interface ConfigDelivery {
  service: string;
  env: string;
  /** Where tasks reach the config center (its base URL): `CONFIG_SERVER`. */
  server: string;
  release: number;
  /** Each file with a URL the agent's fetcher may use without a token (signed, short-lived). */
  files: { name: string; destination: string; mode: string; sha256: string; url: string }[];
}

/** Where the instance being launched goes (a gray release may be for some agents, or some instances). */
export interface ConfigPlacement {
  taskId: string;
  agentId: string;
  hostname: string;
  attributes: Readonly<Record<string, string>>;
}

export interface ConfigPort {
  /**
   * The release to start an instance of app `appId`, linked to (`service`, `env`), with; undefined
   * when there is none, or when the service does not name `appId` as its app in `env` (a label
   * alone links nothing: else any app could ask for another service's files). Synchronous:
   * launches are planned in one turn. Asked once per instance: while a gray release is active,
   * the answer depends on where the instance goes and on how many already run it (the config
   * center counts what it handed out, so two launches of one pass do not both take the last
   * gray slot).
   */
  deliveryFor(service: string, env: string, appId: string, placement: ConfigPlacement): ConfigDelivery | undefined;
}

/** The config service and environment an app's labels link it to, if any. */
export function configLinkOf(labels: Readonly<Record<string, string>>): { service: string; env: string } | undefined {
  const service = labels[CONFIG_SERVICE_LABEL];
  const env = labels[CONFIG_ENV_LABEL];
  return service !== undefined && env !== undefined && service !== '' && env !== '' ? { service, env } : undefined;
}
