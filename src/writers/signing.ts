/**
 * The key and certificate that sign a root hash, loaded and checked before any work starts: both must be PEM, the
 * key RSA (its PKCS#1 v1.5 signatures are deterministic, so signed images stay byte-reproducible) and the
 * certificate's public key the key's own.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { MkportableError } from '../errors.js';

/** Holds the PEM private key itself (CI secrets), or a path to it. */
export const SIGNING_KEY_ENV = 'MKPORTABLE_SIGNING_KEY';

export interface SigningKeys {
  key: KeyObject;
  certificate: X509Certificate;
  /** sha256 of the certificate's DER, lowercase hex: the DPS signature JSON's certificateFingerprint. */
  fingerprint: string;
  /** Where the key came from, for messages: a path or "$MKPORTABLE_SIGNING_KEY". */
  keyOrigin: string;
}

const fail = (message: string, subject: string) => new MkportableError('SIGNING_INVALID', message, subject);

async function readPem(what: string, file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw fail(`${what} '${file}': cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  }
}

function parseKey(pem: string, origin: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw fail(`signingKey ${origin}: the key is encrypted; give an unencrypted PEM key`, origin);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE') throw fail(`signingKey ${origin}: the key is encrypted; give an unencrypted PEM key`, origin);
    throw fail(`signingKey ${origin}: not a PEM private key`, origin);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw fail(`signingKey ${origin}: ${key.asymmetricKeyType} keys are not supported, use an RSA key (its signatures are reproducible)`, origin);
  }
  return key;
}

function parseCertificate(pem: string, file: string): X509Certificate {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw fail(`signingCertificate '${file}': not a PEM certificate`, file);
  try {
    return new X509Certificate(pem);
  } catch {
    throw fail(`signingCertificate '${file}': not a valid PEM certificate`, file);
  }
}

/**
 * Load the signing key (the `signingKey` path, else $MKPORTABLE_SIGNING_KEY) and the certificate; undefined when
 * neither is configured. The options were checked already: a certificate is given whenever this is called with a key.
 */
export async function loadSigningKeys(o: { signingKey?: string; signingCertificate?: string }, env: NodeJS.ProcessEnv = process.env): Promise<SigningKeys | undefined> {
  if (!o.signingCertificate) return undefined;
  let pem: string;
  let origin: string;
  if (o.signingKey) {
    origin = `'${o.signingKey}'`;
    pem = await readPem('signingKey', o.signingKey);
  } else {
    const v = env[SIGNING_KEY_ENV];
    if (!v) throw fail(`signingCertificate '${o.signingCertificate}' needs a key: set signingKey or $${SIGNING_KEY_ENV}`, o.signingCertificate);
    if (v.trimStart().startsWith('-----BEGIN')) {
      origin = `$${SIGNING_KEY_ENV}`;
      pem = v;
    } else {
      origin = `'${v}' (from $${SIGNING_KEY_ENV})`;
      pem = await readPem(`$${SIGNING_KEY_ENV}`, v);
    }
  }
  const key = parseKey(pem, origin);
  const certificate = parseCertificate(await readPem('signingCertificate', o.signingCertificate), o.signingCertificate);
  if (!certificate.checkPrivateKey(key)) {
    throw fail(`signingKey ${origin} does not belong to signingCertificate '${o.signingCertificate}' (${certificate.subject.replace(/\n/g, ', ')})`, o.signingCertificate);
  }
  return { key, certificate, fingerprint: createHash('sha256').update(certificate.raw).digest('hex'), keyOrigin: origin };
}
