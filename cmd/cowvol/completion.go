package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// Shell completion and the man page, both generated from the CLI's own
// definition, so that they never disagree with it. Bash and zsh ask the
// binary itself for the candidates (urfave/cli's --generate-bash-completion
// protocol: the words so far, then that flag; the app prints one candidate
// a line), so they follow whatever verbs and flags the installed binary
// has; fish gets a static script written from the definition.

// bashCompletion is the bash script: `source <(cowvol completion bash)`.
const bashCompletion = `# bash completion for cowvol (cowvol completion bash)
_cowvol() {
	local cur words
	cur="${COMP_WORDS[COMP_CWORD]}"
	words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	local request=("${words[@]}")
	if [[ "$cur" == -* ]]; then
		request+=("$cur")
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${request[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _cowvol cowvol
`

// zshCompletion is the zsh script, for a directory of $fpath as _cowvol.
const zshCompletion = `#compdef cowvol
# zsh completion for cowvol (cowvol completion zsh)
_cowvol() {
	local -a opts request
	request=(${words[1,CURRENT-1]})
	if [[ "${words[CURRENT]}" == -* ]]; then
		request+=("${words[CURRENT]}")
	fi
	opts=("${(@f)$(${request[@]} --generate-bash-completion 2>/dev/null)}")
	if [[ "${opts[1]}" != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _cowvol cowvol
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for `SHELL` (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(cowvol completion bash), or install it as /usr/share/bash-completion/completions/cowvol\n" +
			"zsh:  cowvol completion zsh > \"${fpath[1]}/_cowvol\"\n" +
			"fish: cowvol completion fish > ~/.config/fish/completions/cowvol.fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion: want one shell: bash, zsh or fish")
			}
			return writeCompletion(c.App, c.App.Writer, c.Args().First())
		},
	}
}

// writeCompletion writes app's completion script for shell to w.
func writeCompletion(app *cli.App, w io.Writer, shell string) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return fmt.Errorf("fish completion: %w", err)
		}
		_, err = io.WriteString(w, s)
		return err
	}
	return usageErrorf("completion: unknown shell %q: want bash, zsh or fish", shell)
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the man page (roff), as `make install` installs it: cowvol man | man -l -",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			page, err := c.App.ToMan()
			if err != nil {
				return fmt.Errorf("man page: %w", err)
			}
			_, err = io.WriteString(c.App.Writer, page)
			return err
		},
	}
}
