#!/usr/bin/env bash
# Prepares the GPU bundle on the development machine (the GPU machine has no npm and no network):
#   .gpu/device/        the Node.js binary and with-node launcher from ../shared/device
#   .gpu/node_modules/  a slim copy of the runtime packages the GPU jobs import (default: koffi and its
#                       linux-x64 native part; ~3 MB instead of the ~500 MB dev node_modules)
#   dist/               the compiled project (npm run build)
# The bundle holds koffi (driver bindings) and what the model path imports: zod (config parsing) and
# @huggingface/tokenizers + jinja (checkpoint tokenizers).
# Then prints the `run` call to make. Usage: tools/device/prepare.sh [extra-package ...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
shared=${SHARED_DEVICE_DIR:-$root/../shared/device}

grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

rm -rf .gpu
mkdir -p .gpu/device .gpu/node_modules
cp "$shared"/* .gpu/device/
chmod +x .gpu/device/with-node

# tsc still emits JavaScript when some file (perhaps another engineer's work in progress) has a type
# error; go on then, as long as what the GPU jobs run was emitted.
if ! npm run build --silent; then
  echo "warning: the build reported type errors; continuing with the emitted JavaScript" >&2
fi
for f in dist/bench/attention.js dist/bench/model.js dist/test/cuda/attention.test.js dist/test/cuda/model.test.js; do
  [ -f "$f" ] || { echo "error: $f was not built" >&2; exit 1; }
done

# Copy the dependency closure of the requested packages. Optional dependencies are platform
# binaries: only the linux x64 glibc one travels (the GPU machine is x86-64 Linux).
node - "$root" koffi zod @huggingface/tokenizers @huggingface/jinja "$@" <<'JS'
const fs = require('fs'), path = require('path');
const [root, ...wanted] = process.argv.slice(2);
const src = path.join(root, 'node_modules'), dst = path.join(root, '.gpu', 'node_modules');
const seen = new Set();
function visit(name) {
  if (seen.has(name)) return;
  const dir = path.join(src, name);
  if (!fs.existsSync(dir)) {
    if (/^@koromix\/koffi-/.test(name)) return; // a platform package that is not installed here
    throw new Error(`package ${name} is not installed in node_modules`);
  }
  seen.add(name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) if (/linux-x64$/.test(dep)) visit(dep);
}
for (const w of wanted) visit(w);
const skip = new Set(['doc', 'vendor', 'musl_x64', 'CHANGELOG.md']);
for (const name of seen) {
  fs.cpSync(path.join(src, name), path.join(dst, name), {
    recursive: true,
    // Type declarations, source maps and zod's TypeScript sources are dead weight at run time; the
    // carry limit (64 MiB with the tracked files) is tight, so they stay behind.
    filter: (p) =>
      ![...skip].some((s) => p.endsWith(path.sep + s.split('/').join(path.sep))) &&
      !/\.d\.[cm]?ts$|\.map$/.test(p) && !p.endsWith(path.join('zod', 'src')),
  });
}
console.log(`bundled packages: ${[...seen].join(', ')}`);
JS

du -sh .gpu/node_modules .gpu/device dist | sed 's/^/size: /'
cat <<'MSG'
ready. From the agent, call the device tool `run` with
  command: tools/device/run-job.sh test-cuda bench-attention
  carry:   [".gpu", "dist"]
(see tools/device/README.md for the jobs)
MSG
