# Configuration: directive, then environment, then default; apachectl -t
# fails with one line per problem naming the directive, its environment
# variable and the server.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use IPC::Open3 qw(open3);
use Symbol qw(gensym);

plan tests => 38;

my $module = Apache::Test::vars('serverroot') . '/../mod_openaikey.so';
my $httpd = Apache::Test::vars('httpd');
my $dir = tempdir(CLEANUP => 1);
my @module_env = qw(CLIENT_ID CLIENT_SECRET REDIRECT_URI ALLOWED_USERS ALLOWED_DOMAINS
                    OPENAI_MANAGEMENT_KEY DEFAULT_PROJECT_NAME EXPIRATION CLEANUP_INTERVAL TIMEOUT
                    OIDC_ISSUER GOOGLE_TOKEN_ISSUER_URL OPENAI_API_BASE OPENAIKEY_PASSPHRASE
                    OPENAIKEY_CA_FILE OPENAIKEY_REAP_LEGACY MAX_EXPIRATION MAX_KEYS_PER_USER
                    REVOKE_DISALLOWED SESSION_LIFETIME ALLOWED_GROUPS GROUPS_CLAIM OIDC_SCOPE
                    MAX_IN_FLIGHT OPENAIKEY_STATE_DIR USAGE_INTERVAL);

my $complete = <<'CONF';
OpenAIKeyClientID cid
OpenAIKeyClientSecret secret
OpenAIKeyRedirectURI https://keys.example/oauth2/callback
OpenAIKeyAllowedUsers alice@example.com
OpenAIKeyManagementKey admin
CONF

# Runs httpd -t over a configuration; returns (exit code, stderr lines).
sub configtest {
    my ($body, %env) = @_;
    return run_httpd(['-t'], $body, %env);
}

sub free_port {
    my $socket = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die $!;
    return $socket->sockport;
}

# httpd -k start over a configuration, so that post_config runs too; it is
# stopped again should it have started. Returns (exit code, the lines of
# stderr and of the error log).
sub starttest {
    my ($body, %env) = @_;
    unlink "$dir/error_log";
    my ($rc, @lines) = run_httpd(['-k', 'start'], $body, %env);
    # By post_config, what goes wrong goes to the error log.
    if (open my $log, '<', "$dir/error_log") {
        push @lines, grep { /mod_openaikey|OpenAIKey/ } <$log>;
    }
    if ($rc == 0) {
        run_httpd(['-k', 'stop'], $body, %env);
        for (1 .. 500) { last unless -e "$dir/httpd.pid"; select(undef, undef, undef, 0.02) }
    }
    return ($rc, @lines);
}

sub run_httpd {
    my ($args, $body, %env) = @_;
    my $file = "$dir/httpd.conf";
    # httpd -t binds nothing; a start needs a port free for it.
    my $listen = $args->[0] eq '-t' ? 1 : free_port();
    open my $fh, '>', $file or die $!;
    print {$fh} <<"CONF";
ServerRoot "$dir"
ServerName main.example
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule openaikey_module "$module"
Listen 127.0.0.1:$listen
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
$body
CONF
    close $fh;
    local %ENV = %ENV;
    delete @ENV{@module_env};
    @ENV{keys %env} = values %env;
    my $pid = open3(my $in, my $out, my $err = gensym, $httpd, @$args, '-f', $file);
    close $in;
    my @lines = <$err>;
    waitpid($pid, 0);
    return ($? >> 8, grep { /mod_openaikey|Syntax|OpenAIKey/ } @lines);
}

sub vhost { return "<VirtualHost 127.0.0.1:8080>\nServerName keys.example\n$_[0]\n</VirtualHost>\n" }

my ($rc, @lines) = configtest($complete);
is($rc, 0, 'a complete configuration passes');

($rc, @lines) = configtest('');
is($rc, 0, 'the module loaded but unused passes');

($rc, @lines) = configtest(vhost("OpenAIKeyClientID cid"));
isnt($rc, 0, 'a virtual host lacking required settings fails');
ok((grep { /OpenAIKeyClientSecret \(environment CLIENT_SECRET\) in server keys\.example:8080 \(.*httpd\.conf:\d+\): required but not set/ } @lines),
   'the line names directive, environment variable and virtual host');
is(scalar(grep { /required but not set/ } @lines), 3, 'one line per missing setting (secret, redirect URI, admin key)');
ok((grep { /OpenAIKeyAllowedUsers .*neither allowed users, allowed domains .*nor allowed groups/ } @lines), "and says nobody could sign in");

# Malformed directive values stop the parse at their own line.
my @malformed = (
    ['OpenAIKeyExpiration 1d', qr/OpenAIKeyExpiration: '1d' is not a whole number/, 'not a number'],
    ['OpenAIKeyTimeout 0', qr/OpenAIKeyTimeout: 0 is out of range \(1\.\.300\)/, 'out of range, with the range'],
    ['OpenAIKeyRedirectURI /oauth2/callback', qr/OpenAIKeyRedirectURI: .*not an absolute http\(s\) URL/, 'relative redirect URI'],
    ['OpenAIKeyAPIBase ftp://api.example', qr/OpenAIKeyAPIBase: 'ftp:\/\/api.example' is not an absolute http\(s\) URL/, 'not http(s)'],
    ['OpenAIKeyReapLegacy maybe', qr/OpenAIKeyReapLegacy.*(On or Off|must be On or Off)/i, 'not a flag'],
);
for my $case (@malformed) {
    my ($line, $message, $name) = @$case;
    ($rc, @lines) = configtest($complete . "$line\n");
    my $text = join '', @lines;
    ok($rc != 0 && $text =~ /Syntax error on line 13 of \S+httpd\.conf/ && $text =~ $message, "$name: named at its file and line")
        or diag $text;
}

# What only the environment or the file system can tell is found at startup,
# one line per problem.
($rc, @lines) = configtest($complete . "OpenAIKeyManagementKey file:/nonexistent/admin-key\n",
                           TIMEOUT => 'never');
isnt($rc, 0, 'malformed values fail');
ok((grep { /OpenAIKeyManagementKey .*cannot read file \/nonexistent\/admin-key/ } @lines), 'unreadable file:');
ok((grep { /OpenAIKeyTimeout \(environment TIMEOUT\).*'never' is not a whole number/ } @lines), 'environment value not a number');
is(scalar(grep { /mod_openaikey/ } @lines), 2, 'one line per problem, and Syntax OK is not claimed') or diag @lines;

($rc, @lines) = configtest($complete . "OpenAIKeyScope profile\n");
ok($rc != 0 && (grep { /OpenAIKeyScope \(environment OIDC_SCOPE\).*'profile' must list openid and email/ } @lines),
   'a scope without openid and email fails, named');
($rc, @lines) = configtest($complete . "OpenAIKeyMaxExpiration 60\n");
ok($rc != 0 && (grep { /OpenAIKeyMaxExpiration .*60 is shorter than the default lifetime/ } @lines),
   'a longest lifetime below the default fails, named');

($rc, @lines) = configtest($complete . "<Location /short>\nOpenAIKeyExpiration 600\n"
                                      . "OpenAIKeyMaxExpiration 300\n</Location>\n");
ok($rc != 0 && (grep { /OpenAIKeyMaxExpiration .*<Location \/short>.*300 is shorter/ } @lines),
   'a profile is checked like a server, and named by its <Location>');
($rc, @lines) = configtest($complete . "<Location /a>\nOpenAIKeyProject shared\nOpenAIKeyMaxKeysPerUser 2\n</Location>\n"
                                      . "<Location /b>\nOpenAIKeyProject shared\nOpenAIKeyMaxKeysPerUser 5\n</Location>\n");
ok($rc != 0 && (grep { /<Location \/a>.*<Location \/b>.*project shared.*OpenAIKeyMaxKeysPerUser/ } @lines),
   'profiles sharing a project with different caps fail, naming both') or diag @lines;
($rc, @lines) = configtest($complete . "OpenAIKeyMaxExpiration 172800\n<Location /a>\nOpenAIKeyExpiration 600\n"
                                      . "OpenAIKeyMaxExpiration 3600\n</Location>\n");
ok($rc != 0 && (grep { /main\.example.*<Location \/a>.*OpenAIKeyMaxExpiration/ } @lines),
   'a profile sharing the server\'s project with another longest lifetime fails') or diag @lines;
($rc, @lines) = configtest($complete . "<Location /a>\nOpenAIKeyProject other\nOpenAIKeyMaxKeysPerUser 2\n"
                                      . "OpenAIKeyExpiration 300\nOpenAIKeyMaxExpiration 600\n</Location>\n");
is($rc, 0, 'a profile with a project of its own sets its own cap and longest lifetime') or diag @lines;
($rc, @lines) = configtest($complete . "<Location /x>\nOpenAIKeyClientID other\n</Location>\n");
ok($rc != 0 && (grep { /OpenAIKeyClientID is not valid inside <Location>/ } @lines),
   'a server-only setting inside <Location> is refused at its line');

my %env = (CLIENT_ID => 'cid', CLIENT_SECRET => 'secret', REDIRECT_URI => 'https://keys.example/cb',
           ALLOWED_DOMAINS => 'example.com', OPENAI_MANAGEMENT_KEY => 'admin');
($rc, @lines) = configtest('', %env);
is($rc, 0, 'the seed\'s environment variables configure the main server');

($rc, @lines) = configtest('', %env, EXPIRATION => 'soon');
ok($rc != 0 && (grep { /OpenAIKeyExpiration \(environment EXPIRATION\) in server main\.example \(main server\): 'soon'/ } @lines),
   'a malformed environment value fails, named');

($rc, @lines) = configtest("OpenAIKeyExpiration 120\n", %env, EXPIRATION => 'soon');
is($rc, 0, 'a directive takes precedence over the environment');

($rc, @lines) = configtest('', %env, GOOGLE_TOKEN_ISSUER_URL => 'accounts.google.com');
ok((grep { /OpenAIKeyIssuer \(environment OIDC_ISSUER or GOOGLE_TOKEN_ISSUER_URL\)/ } @lines),
   'the seed\'s GOOGLE_TOKEN_ISSUER_URL is read, after OIDC_ISSUER');
($rc, @lines) = configtest('', %env, OIDC_ISSUER => 'https://idp.example', GOOGLE_TOKEN_ISSUER_URL => 'bad');
is($rc, 0, 'OIDC_ISSUER comes first');

($rc, @lines) = configtest($complete . vhost("OpenAIKeyRedirectURI https://other.example/cb"));
is($rc, 0, 'a virtual host inherits what the main server sets');

my $secret_file = "$dir/secret";
open my $sf, '>', $secret_file or die $!;
print {$sf} "file-secret\n";
close $sf;
($rc, @lines) = configtest($complete . "OpenAIKeyClientSecret file:$secret_file\n");
is($rc, 0, 'file: reads a secret from a readable file');
open $sf, '>', $secret_file or die $!;
close $sf;
($rc, @lines) = configtest($complete . "OpenAIKeyClientSecret file:$secret_file\n");
ok($rc != 0 && (grep { /OpenAIKeyClientSecret .*is empty/ } @lines), 'an empty secret file fails');

# A secret file others may read works, with a warning that says so.
open $sf, '>', $secret_file or die $!;
print {$sf} "file-secret\n";
close $sf;
chmod 0644, $secret_file;
($rc, @lines) = configtest($complete . "OpenAIKeyClientSecret file:$secret_file\n");
ok($rc == 0 && (grep { /OpenAIKeyClientSecret: file \S+ is readable by everyone/ } @lines),
   'a secret file readable by everyone gets a startup warning') or diag @lines;
chmod 0600, $secret_file;
($rc, @lines) = configtest($complete . "OpenAIKeyClientSecret file:$secret_file\n");
ok($rc == 0 && !(grep { /readable by/ } @lines), 'one readable by its owner only does not');

# --- the state directory: made at startup, one per key server -------------------------
my $not_a_dir = "$dir/a-file";
open my $nf, '>', $not_a_dir or die $!;
close $nf;
($rc, @lines) = starttest($complete . "OpenAIKeyStateDir $not_a_dir/state\n");
ok($rc != 0 && (grep { m{OpenAIKeyStateDir \Q$not_a_dir\E/state of server main\.example:\d+: Not a directory} } @lines),
   'a state directory that cannot be made stops the start, naming it and why') or diag @lines;
($rc, @lines) = starttest($complete . "OpenAIKeyStateDir $dir/state/\n" . vhost(''));
is($rc, 0, 'two key servers that name one state directory start') or diag @lines;
my @own = sort map { s{.*/}{}r } glob("$dir/state/*");
ok(@own == 2 && $own[0] =~ /^keys\.example_8080$/ && $own[1] =~ /^main\.example_\d+$/,
   'and each keeps a directory of its own in it, named after it') or diag "@own";
# Nothing is made or handed over through a link, or kept where others write.
mkdir "$dir/elsewhere" or die $!;
symlink "$dir/elsewhere", "$dir/linked" or die $!;
($rc, @lines) = starttest($complete . "OpenAIKeyStateDir $dir/linked\n");
ok($rc != 0 && (grep { m{OpenAIKeyStateDir \Q$dir\E/linked of server .*: it is a symbolic link} } @lines),
   'a state directory that is a symbolic link stops the start') or diag @lines;
mkdir "$dir/open" or die $!;
chmod 0777, "$dir/open";
($rc, @lines) = starttest($complete . "OpenAIKeyStateDir $dir/open\n");
ok($rc != 0 && (grep { m{OpenAIKeyStateDir \Q$dir\E/open of server .*: it is writable by others} } @lines),
   'so does one that others may write to') or diag @lines;
($rc, @lines) = starttest($complete . "OpenAIKeyStateDir $not_a_dir/state\nOpenAIKeyUsageInterval 0\n");
is($rc, 0, 'without spend, no state directory is made') or diag @lines;
