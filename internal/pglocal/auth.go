package pglocal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// superuser is the cluster's bootstrap superuser.
const superuser = "postgres"

// passFile holds the generated passwords in libpq's .pgpass format, so that
// pgx (the passfile URL parameter) and psql (PGPASSFILE) read it directly.
const passFile = "pgpass"

// hbaConf is the client authentication the cluster runs with: only the unix
// socket, inside a directory no one else can enter, and a password
// (SCRAM-SHA-256) on every connection. TCP is refused even if someone turns
// listen_addresses on.
const hbaConf = `# Written by threatdesk (internal/pglocal) at every start: edits are replaced.
# Every connection gives a password (SCRAM-SHA-256); the passwords are in the
# pgpass file beside the data directory. Nothing is accepted over TCP.
# TYPE  DATABASE  USER  ADDRESS    METHOD
local   all       all              scram-sha-256
host    all       all   0.0.0.0/0  reject
host    all       all   ::/0       reject
`

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// passwords reads the password file, generating a password for every role
// in roles that has none yet. The file is written (mode 0600, owned by the
// server's user) only when it changed.
func (s *Server) passwords(roles ...string) (map[string]string, error) {
	path := filepath.Join(s.opts.Dir, passFile)
	pw := map[string]string{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read the password file %q: %w", path, err)
	default:
		if err := checkOwned(path, s.uid); err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Split(strings.TrimSpace(sc.Text()), ":")
			if len(f) == 5 && f[3] != "" && f[4] != "" {
				pw[f[3]] = f[4]
			}
		}
	}
	changed := false
	for _, r := range roles {
		if pw[r] != "" {
			continue
		}
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("generate a password: %w", err)
		}
		pw[r] = hex.EncodeToString(raw)
		changed = true
	}
	if changed || err != nil {
		var out strings.Builder
		out.WriteString("# Passwords of the local PostgreSQL roles (libpq .pgpass format). Keep private.\n")
		for _, r := range slices.Sorted(maps.Keys(pw)) {
			fmt.Fprintf(&out, "*:*:*:%s:%s\n", r, pw[r])
		}
		if err := writePrivateFile(path, []byte(out.String()), s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("store the generated passwords: %w", err)
		}
	}
	return pw, nil
}

// writeHBA installs hbaConf; it reports whether the file changed.
func (s *Server) writeHBA() (bool, error) {
	path := filepath.Join(s.DataDir(), "pg_hba.conf")
	if b, err := os.ReadFile(path); err == nil && string(b) == hbaConf {
		return false, nil
	}
	if err := writePrivateFile(path, []byte(hbaConf), s.uid, s.gid); err != nil {
		return false, fmt.Errorf("write the client authentication file: %w", err)
	}
	return true, nil
}

// secureAuth makes the running server require passwords. A cluster made by
// an older threatdesk trusted every local connection: the superuser is given
// its generated password first (trust still lets us in), then pg_hba.conf
// is rewritten and the server reloads it. Every step is repeatable, so a
// crash in between is finished by the next start.
func (s *Server) secureAuth(ctx context.Context) error {
	path := filepath.Join(s.DataDir(), "pg_hba.conf")
	if b, err := os.ReadFile(path); err == nil && string(b) == hbaConf {
		return nil
	}
	conn, err := s.connect(ctx, superuser, "postgres")
	if err != nil {
		return fmt.Errorf("connect to set the superuser's password: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := quietSession(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+superuser+" WITH PASSWORD "+quoteLiteral(s.pw[superuser])); err != nil {
		return fmt.Errorf("set the superuser's password: %w", err)
	}
	if _, err := s.writeHBA(); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload the client authentication file: %w", err)
	}
	s.log.Warn("the local PostgreSQL trusted local connections; it now requires a password (scram-sha-256), kept in the pgpass file",
		"dir", s.opts.Dir)
	return nil
}

// ensureDatabase creates the application's role and database when asked to.
// The role can log in but is not a superuser; it owns the database and
// everything in its public schema (a database made by an older threatdesk
// belonged to the superuser: its objects are handed over).
func (s *Server) ensureDatabase(ctx context.Context) error {
	db, role := s.opts.Database, s.opts.AppRole
	conn, err := s.connect(ctx, superuser, "postgres")
	if err != nil {
		return fmt.Errorf("connect to create database %q: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := quietSession(ctx, conn); err != nil {
		return err
	}
	if role != "" {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
			return fmt.Errorf("look up role %q: %w", role, err)
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		stmt := fmt.Sprintf("%s ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %s",
			verb, pgx.Identifier{role}.Sanitize(), quoteLiteral(s.pw[role]))
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s role %q: %w", strings.ToLower(verb), role, err)
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", db, err)
	}
	if !exists {
		stmt := "CREATE DATABASE " + pgx.Identifier{db}.Sanitize()
		if role != "" {
			stmt += " OWNER " + pgx.Identifier{role}.Sanitize()
		}
		if _, err := conn.Exec(ctx, stmt); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("create database %q: %w", db, err)
		}
	}
	if role == "" {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
		return fmt.Errorf("give database %q to role %q: %w", db, role, err)
	}
	dbConn, err := s.connect(ctx, superuser, db)
	if err != nil {
		return fmt.Errorf("connect to database %q: %w", db, err)
	}
	defer dbConn.Close(context.WithoutCancel(ctx))
	if _, err := dbConn.Exec(ctx, handOver(role)); err != nil {
		return fmt.Errorf("give the objects of database %q to role %q: %w", db, role, err)
	}
	return nil
}

// handOver is a DO block that gives role every object of the public schema
// that the superuser owns: tables, views, sequences not owned by a column,
// functions, procedures and types (row and array types follow their owner).
func handOver(role string) string {
	r := quoteLiteral(pgx.Identifier{role}.Sanitize())
	return `DO $$
DECLARE
    o record;
    target text := ` + r + `;
BEGIN
    FOR o IN
        SELECT c.oid::regclass::text AS name,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relowner = '` + superuser + `'::regrole
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT (c.relkind = 'S' AND EXISTS (
              SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %s', o.kind, o.name, target);
    END LOOP;
    FOR o IN
        SELECT p.oid::regprocedure::text AS name,
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END AS kind
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner = '` + superuser + `'::regrole
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %s', o.kind, o.name, target);
    END LOOP;
    FOR o IN
        SELECT t.oid::regtype::text AS name, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END AS kind
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typowner = '` + superuser + `'::regrole
          AND (t.typtype IN ('e', 'd', 'r')
               OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %s', o.kind, o.name, target);
    END LOOP;
END
$$`
}

// quietSession keeps the statements of conn, which carry passwords, out of
// the server's log, even when one fails.
func quietSession(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SET log_statement = 'none'; SET log_min_error_statement = 'panic'"); err != nil {
		return fmt.Errorf("keep passwords out of the server log: %w", err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported PostgreSQL).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
