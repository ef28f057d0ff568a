// The outside judges the tests call (OpenSSL, GnuTLS): present, or skipped with a printed reason, or
// required (CI sets KALIT_REQUIRE_OPENSSL=1 and KALIT_REQUIRE_GNUTLS=1, and a missing tool fails).

import { execFileSync } from "node:child_process";

function have(command: string, args: string[], requireVar: string, what: string): boolean {
  try {
    execFileSync(command, args, { stdio: "ignore" });
    return true;
  } catch {
    if (process.env[requireVar] === "1") throw new Error(`${requireVar}=1 but ${what} is missing`);
    console.log(`SKIPPED: ${what} is not installed`);
    return false;
  }
}

export const haveOpenssl = () => have("openssl", ["version"], "KALIT_REQUIRE_OPENSSL", "openssl");
export const haveCerttool = () => have("certtool", ["--version"], "KALIT_REQUIRE_GNUTLS", "certtool (Debian gnutls-bin)");
