/**
 * The constraints of the SPDX 2.3.1 JSON schema (spdx/spdx-spec, schemas/spdx-schema.json), as a JSON Schema
 * (draft 2019-09) for ajv: every property of the document, its packages, files, snippets, relationships, annotations,
 * checksums and the rest, with the same types, patterns, enums, minItems, required lists and additionalProperties:
 * false. Restated here because no Debian or npm package ships the official file and CI reaches no other network;
 * the descriptions are left out, the structure is what a validator checks.
 */

const dateTime = {
  type: 'string',
  pattern: '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|23:59:60)Z$',
};
const str = { type: 'string' };
const strings = { type: 'array', items: str };
const spdxId = { type: 'string', pattern: '^SPDXRef-[a-zA-Z0-9.-]+$' };

/** An object schema that allows only the named properties. */
const closed = (properties: Record<string, unknown>, required: string[]) => ({ type: 'object', properties, required, additionalProperties: false });

const checksum = closed(
  {
    algorithm: {
      type: 'string',
      enum: ['SHA1', 'BLAKE3', 'SHA3-384', 'SHA256', 'SHA384', 'BLAKE2b-512', 'BLAKE2b-256', 'SHA3-512', 'MD2', 'ADLER32', 'MD4', 'SHA3-256', 'BLAKE2b-384', 'SHA512', 'MD6', 'MD5', 'SHA224'],
    },
    checksumValue: { type: 'string', pattern: '^[0-9a-fA-F]+$' },
  },
  ['algorithm', 'checksumValue'],
);

const annotations = {
  type: 'array',
  items: closed({ annotationDate: dateTime, annotationType: { type: 'string', enum: ['OTHER', 'REVIEW'] }, annotator: str, comment: str }, [
    'annotationDate',
    'annotationType',
    'annotator',
    'comment',
  ]),
};

const pointer = closed({ reference: str, offset: { type: 'integer' }, lineNumber: { type: 'integer' } }, ['reference']);

const packageSchema = closed(
  {
    SPDXID: spdxId,
    annotations,
    attributionTexts: strings,
    builtDate: dateTime,
    checksums: { type: 'array', items: checksum },
    comment: str,
    copyrightText: str,
    description: str,
    downloadLocation: str,
    externalRefs: {
      type: 'array',
      items: closed(
        {
          comment: str,
          referenceCategory: { type: 'string', enum: ['OTHER', 'PERSISTENT-ID', 'PERSISTENT_ID', 'SECURITY', 'PACKAGE-MANAGER', 'PACKAGE_MANAGER'] },
          referenceLocator: str,
          referenceType: str,
        },
        ['referenceCategory', 'referenceLocator', 'referenceType'],
      ),
    },
    filesAnalyzed: { type: 'boolean' },
    hasFiles: strings,
    homepage: str,
    licenseComments: str,
    licenseConcluded: str,
    licenseDeclared: str,
    licenseInfoFromFiles: strings,
    name: str,
    originator: str,
    packageFileName: str,
    packageVerificationCode: closed({ packageVerificationCodeExcludedFiles: strings, packageVerificationCodeValue: str }, ['packageVerificationCodeValue']),
    primaryPackagePurpose: {
      type: 'string',
      enum: ['OTHER', 'INSTALL', 'ARCHIVE', 'FIRMWARE', 'APPLICATION', 'FRAMEWORK', 'LIBRARY', 'CONTAINER', 'SOURCE', 'DEVICE', 'OPERATING-SYSTEM', 'FILE'],
    },
    releaseDate: dateTime,
    sourceInfo: str,
    summary: str,
    supplier: str,
    validUntilDate: dateTime,
    versionInfo: str,
  },
  ['SPDXID', 'downloadLocation', 'name'],
);

const fileSchema = closed(
  {
    SPDXID: spdxId,
    annotations,
    artifactOfs: { type: 'array', items: { type: 'object' } },
    attributionTexts: strings,
    checksums: { type: 'array', minItems: 1, items: checksum },
    comment: str,
    copyrightText: str,
    fileContributors: strings,
    fileDependencies: strings,
    fileName: str,
    fileTypes: {
      type: 'array',
      items: { type: 'string', enum: ['OTHER', 'DOCUMENTATION', 'IMAGE', 'VIDEO', 'ARCHIVE', 'SPDX', 'APPLICATION', 'SOURCE', 'BINARY', 'TEXT', 'AUDIO'] },
    },
    licenseComments: str,
    licenseConcluded: str,
    licenseInfoInFiles: strings,
    noticeText: str,
  },
  ['SPDXID', 'checksums', 'fileName'],
);

const snippetSchema = closed(
  {
    SPDXID: spdxId,
    annotations,
    attributionTexts: strings,
    comment: str,
    copyrightText: str,
    licenseComments: str,
    licenseConcluded: str,
    licenseInfoInSnippets: strings,
    name: str,
    ranges: { type: 'array', minItems: 1, items: closed({ endPointer: pointer, startPointer: pointer }, ['endPointer', 'startPointer']) },
    snippetFromFile: str,
  },
  ['SPDXID', 'ranges', 'snippetFromFile'],
);

const RELATIONSHIP_TYPES = [
  'VARIANT_OF', 'COPY_OF', 'PATCH_FOR', 'TEST_DEPENDENCY_OF', 'CONTAINED_BY', 'DATA_FILE_OF', 'OPTIONAL_COMPONENT_OF', 'ANCESTOR_OF',
  'GENERATES', 'CONTAINS', 'OPTIONAL_DEPENDENCY_OF', 'FILE_ADDED', 'REQUIREMENT_DESCRIPTION_FOR', 'DEV_DEPENDENCY_OF', 'DEPENDENCY_OF',
  'BUILD_DEPENDENCY_OF', 'DESCRIBES', 'PREREQUISITE_FOR', 'HAS_PREREQUISITE', 'PROVIDED_DEPENDENCY_OF', 'DYNAMIC_LINK', 'DESCRIBED_BY',
  'METAFILE_OF', 'DEPENDENCY_MANIFEST_OF', 'PATCH_APPLIED', 'RUNTIME_DEPENDENCY_OF', 'TEST_OF', 'TEST_TOOL_OF', 'DEPENDS_ON',
  'SPECIFICATION_FOR', 'FILE_MODIFIED', 'DISTRIBUTION_ARTIFACT', 'AMENDS', 'DOCUMENTATION_OF', 'GENERATED_FROM', 'STATIC_LINK', 'OTHER',
  'BUILD_TOOL_OF', 'TEST_CASE_OF', 'PACKAGE_OF', 'DESCENDANT_OF', 'FILE_DELETED', 'EXPANDED_FROM_ARCHIVE', 'DEV_TOOL_OF', 'EXAMPLE_OF',
];

export const SPDX_2_3_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2019-09/schema',
  $id: 'http://spdx.org/rdf/terms/2.3',
  ...closed(
    {
      $schema: str,
      SPDXID: str,
      annotations,
      comment: str,
      creationInfo: closed({ comment: str, created: dateTime, creators: { type: 'array', minItems: 1, items: str }, licenseListVersion: str }, [
        'created',
        'creators',
      ]),
      dataLicense: str,
      externalDocumentRefs: {
        type: 'array',
        items: closed({ checksum, externalDocumentId: str, spdxDocument: str }, ['checksum', 'externalDocumentId', 'spdxDocument']),
      },
      hasExtractedLicensingInfos: {
        type: 'array',
        items: closed(
          {
            comment: str,
            crossRefs: {
              type: 'array',
              items: closed(
                { isLive: { type: 'boolean' }, isValid: { type: 'boolean' }, isWayBackLink: { type: 'boolean' }, match: str, order: { type: 'integer' }, timestamp: dateTime, url: str },
                ['url'],
              ),
            },
            extractedText: str,
            licenseId: str,
            name: str,
            seeAlsos: strings,
          },
          ['extractedText', 'licenseId'],
        ),
      },
      name: str,
      revieweds: { type: 'array', items: closed({ comment: str, reviewDate: dateTime, reviewer: str }, ['reviewDate']) },
      spdxVersion: str,
      documentNamespace: str,
      documentDescribes: strings,
      packages: { type: 'array', items: packageSchema },
      files: { type: 'array', items: fileSchema },
      snippets: { type: 'array', items: snippetSchema },
      relationships: {
        type: 'array',
        items: closed({ spdxElementId: str, comment: str, relatedSpdxElement: str, relationshipType: { type: 'string', enum: RELATIONSHIP_TYPES } }, [
          'spdxElementId',
          'relatedSpdxElement',
          'relationshipType',
        ]),
      },
    },
    ['SPDXID', 'creationInfo', 'dataLicense', 'name', 'spdxVersion', 'documentNamespace'],
  ),
};
