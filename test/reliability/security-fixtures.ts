import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createUser as createNkeyUser } from '@nats-io/nkeys';

/**
 * Credentials made fresh by the test run: a CA and a server certificate for 127.0.0.1 from
 * openssl, an nkey user, and an operator → account → user JWT chain with its .creds file.
 * Nothing is checked in, so nothing can expire in the repository.
 */

export interface TlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** CA plus a server certificate with SANs 127.0.0.1 and localhost (EC keys: fast to make). */
export function makeTlsFiles(dir: string): TlsFiles {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=nestjs-jetstream test CA']);
  openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  return { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') };
}

/** A client certificate signed by the CA of makeTlsFiles (same dir), for mutual TLS. */
export function makeClientCert(dir: string): { certFile: string; keyFile: string } {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=billing-service']);
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2', '-extfile', 'client.ext']);
  return { certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client.key') };
}

export interface NkeyUser {
  readonly publicKey: string;
  readonly seed: Uint8Array;
  readonly seedText: string;
}

export function makeNkeyUser(): NkeyUser {
  const kp = createNkeyUser();
  const seed = kp.getSeed();
  return { publicKey: kp.getPublicKey(), seed, seedText: new TextDecoder().decode(seed) };
}

export interface JwtSetup {
  /** Server config lines: operator, system account, in-memory resolver with both accounts. */
  readonly serverConfig: string;
  readonly creds: Uint8Array;
  readonly credsFile: string;
  /** The user's seed as it appears in the creds file: must never be logged. */
  readonly userSeed: string;
  readonly userJwt: string;
}

/** Operator, a system account, an application account with JetStream, one user and its creds. */
export async function makeJwtSetup(dir: string): Promise<JwtSetup> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const user = createUser();
  const operatorJwt = await encodeOperator('test-operator', operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  // Unlimited JetStream storage is what turns JetStream on for the account. Limits left out of
  // the claim read as 0 (no connections, no subscriptions), so every one is spelled out.
  const unlimited = { subs: -1, conn: -1, leaf: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true };
  const accountJwt = await encodeAccount(
    'APP',
    account,
    { limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } },
    { signer: operator },
  );
  const userJwt = await encodeUser('app-user', user, account);
  const creds = fmtCreds(userJwt, user);
  const credsFile = join(dir, 'app-user.creds');
  writeFileSync(credsFile, creds, { mode: 0o600 });
  const serverConfig = [
    `operator: ${operatorJwt}`,
    `system_account: ${system.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${system.getPublicKey()}: ${systemJwt}`,
    `  ${account.getPublicKey()}: ${accountJwt}`,
    '}',
  ].join('\n');
  return { serverConfig, creds, credsFile, userSeed: new TextDecoder().decode(user.getSeed()), userJwt };
}
