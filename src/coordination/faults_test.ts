import { equal } from "node:assert/strict";
import {
  ClientClosedError,
  ClientOfflineError,
  ErrorReply,
  SimpleError,
  SocketClosedUnexpectedlyError,
} from "@redis/client";
import { isExpectedFault } from "./faults.ts";
import { NoAnswer } from "./no_answer.ts";

/** An operating system's network error as node:net reports it (`code`, `syscall`). */
function systemError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall, errno: -104 });
}

Deno.test("isExpectedFault(): Redis timeouts, node-redis's connection errors and error replies, and network errors are expected", () => {
  for (
    const error of [
      new NoAnswer("Redis resolve timed out after 500 ms"),
      new ClientOfflineError(),
      new ClientClosedError(),
      new SocketClosedUnexpectedlyError(),
      new ErrorReply("OOM command not allowed when used memory > 'maxmemory'."),
      new SimpleError("READONLY You can't write against a read only replica."),
      new ErrorReply("LOADING Redis is loading the dataset in memory"),
      systemError("ECONNRESET", "read"),
      systemError("EPIPE", "write"),
    ]
  ) {
    equal(isExpectedFault(error), true, `${error.constructor.name}: ${error.message}`);
  }
});

Deno.test("isExpectedFault(): program errors, plain errors and non-errors are bugs", () => {
  // A node error of an invalid argument: a TypeError with a code (and even a syscall) is a bug.
  const invalidArgument = Object.assign(new TypeError("The argument must be a string"), {
    code: "ERR_INVALID_ARG_TYPE",
    syscall: "write",
  });
  const throwing = new Proxy(new Error("odd"), {
    getPrototypeOf() {
      throw new Error("no prototype");
    },
  });
  for (
    const error of [
      new TypeError("Cannot read properties of undefined (reading 'home')"),
      new RangeError("Invalid array length"),
      new ReferenceError("x is not defined"),
      new SyntaxError("Unexpected token in JSON"),
      invalidArgument,
      new Error("Assertion failed: a claimed room has no id"),
      "a string",
      undefined,
      { message: "OOM command not allowed" },
      throwing,
    ]
  ) {
    equal(isExpectedFault(error), false, String(error));
  }
});

Deno.test("isExpectedFault(): a subclass of a TypeError is a bug even when named like a node-redis class", () => {
  class ErrorReplyLike extends TypeError {}
  Object.defineProperty(ErrorReplyLike, "name", { value: "ErrorReply" });
  equal(isExpectedFault(new ErrorReplyLike("x")), false);
});
