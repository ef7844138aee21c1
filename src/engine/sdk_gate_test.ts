import { equal, ok } from "node:assert/strict";
import {
  checkSdk,
  compareSemVer,
  parseSemVer,
  type SdkGateManifest,
  type SemVer,
} from "./sdk_gate.ts";

const MANIFEST: SdkGateManifest = {
  minimumVersions: { unity: "1.10.0", godot: "0.9.0", test: "1.0.0" },
  recommendedVersions: { unity: "1.12.0", "godot-rust": "0.9.2" },
  capabilities: { _default: ["reconnection"], unity: ["relay-matchbox"] },
  notes: { unity: "Upgrade." },
};

function version(text: string): SemVer {
  const parsed = parseSemVer(text);
  if (typeof parsed === "string") throw new Error(`${text}: ${parsed}`);
  return parsed;
}

Deno.test("parseSemVer() accepts strict semver only", () => {
  for (const good of ["0.0.0", "1.2.3", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha-x.7+build.5"]) {
    ok(typeof parseSemVer(good) !== "string", good);
  }
  for (
    const bad of [
      "",
      "1",
      "1.2",
      "1.2.3.4",
      "01.2.3",
      "1.2.x",
      "v1.2.3",
      "1.2.3-",
      "1.2.3-01",
      "1.2.3+",
      " 1.2.3",
    ]
  ) {
    equal(typeof parseSemVer(bad), "string", bad);
  }
  equal(parseSemVer("1.2"), "unexpected end of input while parsing patch version number");
});

Deno.test("compareSemVer() follows semver precedence", () => {
  const ordered = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.9.0",
    "1.10.0",
    "2.0.0",
    "99999999999999999999.0.0",
  ];
  for (let i = 0; i + 1 < ordered.length; i++) {
    ok(
      compareSemVer(version(ordered[i]!), version(ordered[i + 1]!)) < 0,
      `${ordered[i]} < ${ordered[i + 1]}`,
    );
    ok(compareSemVer(version(ordered[i + 1]!), version(ordered[i]!)) > 0);
  }
  equal(compareSemVer(version("1.2.3+a"), version("1.2.3+b")), 0);
});

Deno.test("checkSdk() applies the docs/spec/PROTOCOL.md §7.1.4 rows in order", () => {
  equal(
    checkSdk(MANIFEST, undefined, "1.0.0"),
    "SDK platform is required for compatibility validation",
  );
  equal(checkSdk(MANIFEST, "Switch", "1.0.0"), "SDK platform `Switch` is not recognized");
  // Known (recommended version only) but without a minimum: also "not recognized".
  equal(checkSdk(MANIFEST, "godot-rust", "0.9.2"), "SDK platform `godot-rust` is not recognized");
  equal(checkSdk(MANIFEST, "Unity", undefined), "SDK version is required for platform `Unity`");
  equal(
    checkSdk(MANIFEST, "unity", "1.12"),
    "SDK version `1.12` for platform `unity` is invalid: unexpected end of input while parsing patch version number",
  );
  equal(
    checkSdk(MANIFEST, "UNITY", "1.9.9"),
    "SDK version `1.9.9` for platform `UNITY` is below the minimum supported version `1.10.0`",
  );
  equal(
    checkSdk(MANIFEST, "unity", "1.10.0-rc.1"),
    "SDK version `1.10.0-rc.1` for platform `unity` is below the minimum supported version `1.10.0`",
  );
  equal(checkSdk(MANIFEST, "Unity", "1.10.0"), undefined);
  equal(checkSdk(MANIFEST, "godot", "2.0.0"), undefined);
});

Deno.test("checkSdk() passes everyone when no minimum versions are configured", () => {
  const inactive = { ...MANIFEST, minimumVersions: {} };
  equal(checkSdk(inactive, undefined, undefined), undefined);
  equal(checkSdk(inactive, "anything", "not-a-version"), undefined);
});
