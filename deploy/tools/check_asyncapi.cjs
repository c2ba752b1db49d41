// Validate an AsyncAPI document with the official parser (@asyncapi/parser), payload schemas
// included: prints one line per diagnostic (severity 0 error, 1 warning, 2 info, 3 hint) and
// exits 1 if any error was found, 0 otherwise.
//
//   NODE_PATH=.cache/asyncapi/node_modules node deploy/tools/check_asyncapi.cjs schemas/asyncapi.yaml
//
// The parser is installed by the test suite (tests/deploy/test_asyncapi.py) into .cache/.
const path = require("path");
const { Parser, fromFile } = require("@asyncapi/parser");

async function main(file) {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse({
    validateOptions: { allowedSeverity: { warning: true, info: true, hint: true } },
  });
  const names = ["error", "warning", "info", "hint"];
  for (const d of diagnostics) {
    console.log(`${names[d.severity] || d.severity} ${d.code} at ${(d.path || []).join(".")}: ${d.message}`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0).length;
  if (!document && errors === 0) {
    console.log("error parse: no document was produced");
    return 1;
  }
  return errors ? 1 : 0;
}

main(process.argv[2]).then((code) => process.exit(code), (err) => {
  console.log(`error exception: ${err && err.stack || err}`);
  process.exit(1);
});
