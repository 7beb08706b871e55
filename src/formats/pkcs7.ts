/**
 * Detached PKCS#7 SignedData over a dm-verity root hash, as the kernel (dm-verity root hash signatures) and
 * systemd's userspace check read it: sha256, no signed attributes, the signer certificate included, DER. The bytes
 * are those of `openssl smime -sign -binary -noattr -outform der -md sha256` for the same key and content (RSA
 * PKCS#1 v1.5 signatures are deterministic). The ASN.1 structures come from @peculiar/asn1-cms.
 */
import { createHash, sign, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import {
  CertificateChoices, CertificateSet, ContentInfo, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, IssuerAndSerialNumber,
  SignedData, SignerIdentifier, SignerInfo, SignerInfos, id_data, id_signedData,
} from '@peculiar/asn1-cms';

const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_RSA = '1.2.840.113549.1.1.1';
const OID_SHA256_RSA = '1.2.840.113549.1.1.11';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const DER_NULL = new Uint8Array([0x05, 0x00]).buffer;

const bytes = (b: ArrayBuffer | Uint8Array) => (b instanceof Uint8Array ? b : new Uint8Array(b));

/** The [0] IMPLICIT attributes as the SET OF they are signed as. */
function setOf(implicit: Uint8Array): Uint8Array {
  const out = implicit.slice();
  out[0] = 0x31;
  return out;
}

/** DER SET OF: the encodings sorted bytewise, then tag 0x31 and a definite length. */
function derSetOf(items: Uint8Array[]): Uint8Array {
  const body = Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b)));
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([0x31, ...len]), body]);
}

/** A DER SignedData, detached, signed by `key` (RSA) and naming `certificate` (the key's). */
export function signDetached(content: Uint8Array, key: KeyObject, certificate: X509Certificate): Uint8Array {
  const cert = AsnConvert.parse(certificate.raw, Certificate);
  const sha256 = () => new AlgorithmIdentifier({ algorithm: OID_SHA256, parameters: DER_NULL });
  const signerInfo = new SignerInfo({
    version: 1,
    sid: new SignerIdentifier({
      issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: cert.tbsCertificate.issuer, serialNumber: cert.tbsCertificate.serialNumber }),
    }),
    digestAlgorithm: sha256(),
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID_RSA, parameters: DER_NULL }),
    signature: new OctetString(sign('sha256', content, key)),
  });
  const signed = new SignedData({
    version: 1,
    digestAlgorithms: new DigestAlgorithmIdentifiers([sha256()]),
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
    certificates: new CertificateSet([new CertificateChoices({ certificate: cert })]),
    signerInfos: new SignerInfos([signerInfo]),
  });
  const info = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signed) });
  return bytes(AsnConvert.serialize(info));
}

export interface SignatureFacts {
  /** Certificates carried inside the signature (systemd ignores them; the kernel too). */
  certificates: number;
  signers: number;
}

/** Parse a DER SignedData; a string says why it is not one. */
export function parseSignature(der: Uint8Array): { signed: SignedData; facts: SignatureFacts } | string {
  let info: ContentInfo;
  let signed: SignedData;
  try {
    info = AsnConvert.parse(der, ContentInfo);
    if (info.contentType !== id_signedData) return `content type ${info.contentType} is not signedData`;
    signed = AsnConvert.parse(info.content, SignedData);
  } catch (e) {
    return `not DER PKCS#7 (${(e as Error).message})`;
  }
  return { signed, facts: { certificates: signed.certificates?.length ?? 0, signers: signed.signerInfos.length } };
}

/**
 * Does `der` hold a valid signature by `certificate` over `content`? Like systemd's check (PKCS7_NOINTERN |
 * PKCS7_NOVERIFY): the signer must be the given certificate, whatever certificates the signature carries, and
 * no chain or validity dates are checked. A string says why not.
 */
export function verifyDetached(der: Uint8Array, content: Uint8Array, certificate: X509Certificate): true | string {
  const parsed = parseSignature(der);
  if (typeof parsed === 'string') return parsed;
  const cert = AsnConvert.parse(certificate.raw, Certificate);
  const issuer = Buffer.from(AsnConvert.serialize(cert.tbsCertificate.issuer));
  const serial = Buffer.from(cert.tbsCertificate.serialNumber);
  const mine = parsed.signed.signerInfos.find((si) => {
    const ias = si.sid.issuerAndSerialNumber;
    return ias && Buffer.from(AsnConvert.serialize(ias.issuer)).equals(issuer) && Buffer.from(ias.serialNumber).equals(serial);
  });
  if (!mine) return `signed by another key: no signer is ${certificate.subject.replace(/\n/g, ', ')} (serial ${certificate.serialNumber})`;
  if (mine.digestAlgorithm.algorithm !== OID_SHA256) return `digest ${mine.digestAlgorithm.algorithm} is not sha256`;
  if (![OID_RSA, OID_SHA256_RSA].includes(mine.signatureAlgorithm.algorithm)) return `signature algorithm ${mine.signatureAlgorithm.algorithm} is not RSA`;
  let signedBytes: Uint8Array = content;
  if (mine.signedAttrs) {
    // With attributes the signature covers their DER as a SET OF, and messageDigest carries the content's digest.
    const digestAttr = mine.signedAttrs.find((a) => a.attrType === OID_MESSAGE_DIGEST);
    const want = createHash('sha256').update(content).digest();
    const got = digestAttr?.attrValues[0] ? AsnConvert.parse(digestAttr.attrValues[0], OctetString) : undefined;
    if (!got || !Buffer.from(got.buffer).equals(want)) return 'the messageDigest attribute is not the sha256 of the root hash';
    signedBytes = mine.signedAttrsRaw ? setOf(new Uint8Array(mine.signedAttrsRaw)) : derSetOf(mine.signedAttrs.map((a) => bytes(AsnConvert.serialize(a))));
  }
  const ok = verify('sha256', signedBytes, certificate.publicKey, Buffer.from(mine.signature.buffer));
  return ok ? true : 'the signature does not match the root hash (signed for other content, or damaged)';
}
