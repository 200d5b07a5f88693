// @tus/server 2.x with its file store, as its README's standalone example runs it.
// Usage: node tus-node-server.mjs PORT DIRECTORY   (prints "listening on PORT" when ready)
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node tus-node-server.mjs PORT DIRECTORY");
  process.exit(2);
}

const server = new Server({
  path: "/files",
  datastore: new FileStore({ directory }),
  // Same cap as RelayPACS-tus's default Tus-Max-Size (5 GiB).
  maxSize: 5 * 1024 ** 3,
});
const http = server.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log(`listening on ${http.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => http.close(() => process.exit(0)));
}
