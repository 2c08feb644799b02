# Every example configuration in conf/ passes apachectl -t, with the
# modules it names, the built module and throwaway secrets and certificates.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);
use IPC::Open3 qw(open3);
use Symbol qw(gensym);

my $top = Apache::Test::vars('serverroot') . '/..';
my $module = "$top/mod_openaikey.so";
my $httpd = Apache::Test::vars('httpd');
my $mods = '/usr/lib/apache2/modules';
my $conf = "$top/conf";
my $dir = tempdir(CLEANUP => 1);

sub slurp { my ($p) = @_; open my $fh, '<', $p or die "$p: $!"; local $/; return <$fh> }
sub spew { my ($p, $t) = @_; open my $fh, '>', $p or die "$p: $!"; print {$fh} $t; close $fh }

# The example's paths, made real in $dir.
for my $secret (qw(client-secret admin-key passphrase)) {
    spew("$dir/$secret", "example-$secret\n");
    chmod 0600, "$dir/$secret";
}
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=keys.example.com "
       . "-keyout '$dir/key.pem' -out '$dir/cert.pem' >/dev/null 2>&1") == 0
    or die 'openssl req failed';
sub localise {
    my ($text) = @_;
    $text =~ s{/etc/ssl/certs/keys\.example\.com\.pem}{$dir/cert.pem}g;
    $text =~ s{/etc/ssl/private/keys\.example\.com\.key}{$dir/key.pem}g;
    $text =~ s{/etc/apache2/openaikey/}{$dir/}g;
    $text =~ s{\$\{APACHE_LOG_DIR\}}{$dir}g;
    $text =~ s{/usr/lib/apache2/modules/mod_openaikey\.so}{$module}g;
    return $text;
}

# apachectl -t of $body with the modules named; the exit code and output.
sub configtest {
    my ($body, @modules) = @_;
    my $file = "$dir/httpd.conf";
    my $loads = join '', map { "LoadModule ${_}_module $mods/mod_$_.so\n" }
        ('mpm_event', 'authz_core', 'authz_host', 'authz_user', 'authn_core', 'auth_basic', @modules);
    spew($file, "ServerRoot \"$dir\"\nServerName main.example\nListen 127.0.0.1:8443\n"
                . "PidFile \"$dir/httpd.pid\"\nErrorLog \"$dir/error_log\"\n$loads$body\n");
    my $pid = open3(my $in, my $out, my $err = gensym, $httpd, '-t', '-f', $file);
    close $in;
    my $text = join '', <$err>, <$out>;
    waitpid($pid, 0);
    return ($? >> 8, $text);
}

# The blocks of issue-examples.conf, uncommented, numbered as in the file.
my %blocks;
my $number;
for my $line (split /\n/, slurp("$conf/issue-examples.conf")) {
    $number = $1 if $line =~ /^# (\d+)\. /;
    next unless $number && $line =~ /^#(?! )(.*)$/;
    $blocks{$number} .= "$1\n";
}
my $vhost_settings = <<"CONF";
OpenAIKeyClientID      cid
OpenAIKeyClientSecret  file:$dir/client-secret
OpenAIKeyRedirectURI   https://keys.example.com/oauth2/callback
OpenAIKeyAllowedDomains example.com
OpenAIKeyManagementKey file:$dir/admin-key
OpenAIKeyPassphrase    file:$dir/passphrase
CONF

my @cases = (
    ['example-vhost.conf', "LoadModule openaikey_module $module\n" . localise(slurp("$conf/example-vhost.conf")),
     ['ssl', 'socache_shmcb']],
    ['profiles-example.conf', "LoadModule openaikey_module $module\n" . localise(slurp("$conf/profiles-example.conf")),
     ['ssl', 'socache_shmcb', 'ldap', 'authnz_ldap']],
    ['openaikey.load and openaikey.conf',
     localise(slurp("$conf/openaikey.load")) . localise(slurp("$conf/openaikey.conf")), []],
    ['issue-examples.conf 1 (mod_auth_openidc)', "LoadModule openaikey_module $module\n"
     . "<VirtualHost *:8443>\nServerName keys.example.com\n$vhost_settings$blocks{1}</VirtualHost>\n",
     ['auth_openidc']],
    ['issue-examples.conf 2 (mod_auth_gssapi)', "LoadModule openaikey_module $module\n"
     . "<VirtualHost *:8443>\nServerName keys.example.com\n$vhost_settings$blocks{2}</VirtualHost>\n",
     ['auth_gssapi', 'rewrite']],
    ['issue-examples.conf 3 (LDAP)', "LoadModule openaikey_module $module\n"
     . "<VirtualHost *:8443>\nServerName keys.example.com\n$vhost_settings$blocks{3}</VirtualHost>\n",
     ['ldap', 'authnz_ldap']],
);
plan tests => 1 + scalar @cases;
is(scalar(keys %blocks), 3, 'issue-examples.conf holds three examples');
for my $case (@cases) {
    my ($name, $body, $modules) = @$case;
    my ($rc, $text) = configtest($body, @$modules);
    is($rc, 0, "$name passes apachectl -t") or diag $text;
}
