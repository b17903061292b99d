// login | logout: keep the address, CA file and API token in a profile (mode 0600).
import { Command } from 'commander';
import type { HealthView } from '../api';
import { RestClient } from '../client';
import { ENV, resolveConnection, type ConnectionFlags } from '../connection';
import { CliError, EXIT, usageError } from '../exit-codes';
import { examples, print } from '../kit';
import { profilePath, removeProfile, writeProfile } from '../profile';
import { paint } from '../terminal';

/** The token from stdin: typed at a hidden prompt on a terminal, else the first line piped in. */
async function readToken(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split('\n')[0].trim();
  }
  // No echo before the prompt shows: what is typed after it is never on the screen.
  stdin.setRawMode(true);
  process.stderr.write('API token (input hidden): ');
  stdin.resume();
  try {
    return await new Promise<string>((done, fail) => {
      let typed = '';
      stdin.on('data', (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return done(typed.trim());
          if (ch === '\u0003') return fail(new CliError('cancelled', EXIT.usage));
          typed = ch === '\u007f' ? typed.slice(0, -1) : typed + ch;
        }
      });
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

export function loginCommands(): Command[] {
  const login = new Command('login')
    .description(
      'check an address, CA file and API token against the control server, and save them for the commands that follow in $XDG_CONFIG_HOME/teleboot/profile.json (~/.config without XDG_CONFIG_HOME), mode 0600',
    )
    .action(async (_flags: unknown, cmd: Command) => {
      const flags = cmd.optsWithGlobals<ConnectionFlags>();
      const connection = resolveConnection(flags, process.env, false);
      if (!connection.token?.value) connection.token = { value: await readToken(), from: 'the prompt' };
      if (!connection.token.value) throw usageError(`no API token given: pass --token, set ${ENV.token}, or type or pipe it in`);
      // Any valid token may read the health: this proves the address, the CA and the token at once.
      const health = await new RestClient(connection).get<HealthView>('/v1/health');
      const path = profilePath();
      await writeProfile(
        { addr: connection.addr, ...(connection.caCert ? { caCert: connection.caCert.path } : {}), token: connection.token.value },
        path,
      );
      print(`${paint('green', 'logged in')} to ${connection.addr} (${health.total} instance(s)); profile saved to ${path} (mode 0600)\n`);
    });
  examples(
    login,
    'teleboot login --addr https://control.internal:7080 --ca-cert ca.pem   # then type the token',
    'ssh control sudo cat /var/lib/teleboot-control/admin-token | teleboot login --addr https://control.internal:7080 --ca-cert ca.pem',
  );

  const logout = new Command('logout')
    .description('delete the saved profile (the token stays valid on the server: revoke it with tokens api rm)')
    .action(() => {
      const path = profilePath();
      print(removeProfile(path) ? `removed ${path}\n` : `no profile at ${path}\n`);
    });
  examples(logout, 'teleboot logout');
  return [login, logout];
}
