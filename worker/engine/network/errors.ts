/** Errors of bridge networking. Each names what failed and how to fix it. */
import { EngineError } from '../errors.js';

/** The worker's network configuration is unusable (FAASBOX_NET_*): it refuses to start. */
export class NetworkConfigError extends Error {
  readonly code = 'NETWORK_CONFIG';
  constructor(readonly setting: string, problem: string) {
    super(`${setting}: ${problem}`);
    this.name = 'NetworkConfigError';
  }
}

/** Bridge mode cannot work here (no subnet configured, or the kernel lacks veth, bridge or nftables); mode none still does. */
export class NetworkUnavailableError extends EngineError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('NETWORK_UNAVAILABLE', `bridge networking is unavailable: ${reason}; containers with network mode "none" still run`, { reason }, options);
    this.name = 'NetworkUnavailableError';
  }
}

/** Every address of the worker's subnet is leased. */
export class AddressesExhaustedError extends EngineError {
  constructor(subnet: string) {
    super('ADDRESSES_EXHAUSTED', `no free address left in ${subnet} (each live bridge container holds one); configure a larger FAASBOX_NET_SUBNET`, { subnet });
    this.name = 'AddressesExhaustedError';
  }
}
