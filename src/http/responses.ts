/**
 * The plain responses every HTTP route shares (docs/spec/SERVER.md §1.2).
 *
 * @module
 */

/** The 404 of every unknown path (docs/spec/SERVER.md §1.2): `text/plain; charset=utf-8`, body `Not Found`. */
export function notFound(): Response {
  return new Response("Not Found", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** The 405 of a known path asked with a method other than GET or HEAD (docs/spec/SERVER.md §1.2). */
export function methodNotAllowed(): Response {
  return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
}
